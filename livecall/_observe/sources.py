"""Figures that plugins add to the process's metrics, without importing a metrics library.

A plugin (the webhook sender, the Redis worker) counts in plain integers
and registers a source: a function returning :class:`MetricFamily` values,
called at each scrape.  So a plugin costs nothing and imports nothing when
no metrics are served, and its figures join livecall's on one endpoint.
"""

import threading
from collections.abc import Iterable, Mapping
from typing import Callable

import attrs

__all__ = ["KINDS", "MetricFamily", "Source", "add_source", "remove_source", "sources"]

#: What a family may be, as Prometheus names them.
KINDS = frozenset({"counter", "gauge"})


@attrs.frozen
class MetricFamily:
    """One metric and its samples: ``(labels, value)`` pairs.

    ``name`` follows Prometheus' naming (a counter's ends in ``_total``);
    labels must take few values: never a call id, a token or a phone number.
    """

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    help: str
    samples: tuple[tuple[Mapping[str, str], float], ...] = ()


Source = Callable[[], Iterable[MetricFamily]]

_lock = threading.Lock()
_sources: list[Source] = []


def add_source(source: Source) -> None:
    """Call ``source()`` at every scrape and show what it returns; added once however often given."""
    with _lock:
        if source not in _sources:
            _sources.append(source)


def remove_source(source: Source) -> None:
    """Stop calling ``source``; nothing happens if it was not added."""
    with _lock:
        if source in _sources:
            _sources.remove(source)


def sources() -> list[Source]:
    with _lock:
        return list(_sources)
