"""Metrics, health endpoints and traces for a process that watches calls.

``serve()`` starts the process's one HTTP endpoint (``/metrics``,
``/healthz``, ``/readyz``); ``enable_metrics()`` adds livecall's figures to
a Prometheus registry the program serves itself; ``enable_tracing()`` makes
OpenTelemetry spans on the application's tracer provider, until
``disable_tracing()``.  Each needs its extra (``livecall[metrics]``,
``livecall[otel]``) and imports it only when called: a process that calls
none of them imports neither library and takes no timings.  Plugins add their own figures with
:func:`add_metrics_source`, in plain numbers, and pass an event's trace on
with :func:`traceparent`.
"""

import threading
from typing import Any, Callable, Optional, Union

from ._hub.loop import hub_turn_age, running_hub
from ._observe import registry
from ._observe.endpoint import Endpoint
from ._observe.health import DEFAULT_HUB_STALL, DEFAULT_STALE_AFTER, Health, check_health
from ._observe.sources import MetricFamily, Source, add_source, remove_source
from ._watch.provider import providers
from ._wire.checks import seconds
from .errors import ConfigurationError

__all__ = [
    "DEFAULT_HUB_STALL",
    "DEFAULT_STALE_AFTER",
    "Endpoint",
    "Health",
    "MetricFamily",
    "add_metrics_source",
    "disable_tracing",
    "enable_metrics",
    "enable_tracing",
    "health",
    "remove_metrics_source",
    "serve",
    "traceparent",
]

#: Whether the process takes work now: a bool, or ``(bool, why not)``.
Ready = Callable[[], Union[bool, tuple[bool, str]]]

_lock = threading.Lock()
_registered: list[Any] = []  # the Prometheus registries livecall's collector is in


def add_metrics_source(source: Source) -> None:
    """Show what ``source()`` returns (:class:`MetricFamily` values) at every scrape.

    For plugins: count in plain numbers and describe them here; nothing is
    imported or served unless the process serves metrics.  A source that
    raises is logged and skipped; the scrape goes on.
    """
    add_source(source)


def remove_metrics_source(source: Source) -> None:
    """Stop showing ``source``; nothing happens if it was not added."""
    remove_source(source)


def health(stale_after: float = DEFAULT_STALE_AFTER, hub_stall: float = DEFAULT_HUB_STALL) -> Health:
    """What ``/healthz`` would answer now: the problems that make this process worth restarting.

    The hub's I/O thread not turning for ``hub_stall`` seconds, a plugin
    stuck in a hook past the watchdog's limit (``configure_hub(stuck_after=)``),
    an open connection that heard nothing for ``stale_after`` seconds.
    """
    seconds("stale_after", stale_after)
    seconds("hub_stall", hub_stall)
    return check_health(running_hub(), stale_after, hub_stall)


def enable_metrics(registry_: Optional[Any] = None) -> None:
    """Count into ``registry_`` (``prometheus_client.REGISTRY`` if None), for a program serving its own.

    Watches that start from now on take the timings the histograms need.
    ``ConfigurationError`` without ``prometheus_client``.
    """
    collector = _collector()
    if registry_ is None:
        from prometheus_client import REGISTRY

        registry_ = REGISTRY
    with _lock:
        if any(known is registry_ for known in _registered):
            return
        registry_.register(collector)
        _registered.append(registry_)


def serve(
    port: int = 0,
    host: str = "127.0.0.1",
    *,
    ready: Optional[Ready] = None,
    stale_after: float = DEFAULT_STALE_AFTER,
    hub_stall: float = DEFAULT_HUB_STALL,
) -> Endpoint:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` (0: any free port).

    Returns the :class:`Endpoint` (``port``, ``url``, ``close()``).
    ``/healthz`` answers as :func:`health` says, 503 with the problems in a
    small JSON body; ``/readyz`` answers 200 while ``ready()`` is true (by
    default always), else 503 with its reason.  ``ConfigurationError``
    without ``prometheus_client`` or when the port cannot be bound.
    """
    seconds("stale_after", stale_after)
    seconds("hub_stall", hub_stall)
    collector = _collector()
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest

    served = CollectorRegistry()
    served.register(collector)
    ProcessCollector(registry=served)

    def exposition() -> tuple[bytes, str]:
        return generate_latest(served), CONTENT_TYPE_LATEST

    def answer_ready() -> tuple[bool, str]:
        if ready is None:
            return True, ""
        said = ready()
        return said if isinstance(said, tuple) else (bool(said), "not ready")

    try:
        return Endpoint(
            host,
            port,
            exposition,
            answer_ready,
            lambda: check_health(running_hub(), stale_after, hub_stall),
        )
    except OSError as error:
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise ConfigurationError(f"cannot serve metrics on {where}: {error.strerror or error}") from None


def enable_tracing(tracer_provider: Optional[Any] = None) -> None:
    """Make OpenTelemetry spans for handshakes and events, on ``tracer_provider`` or the global one.

    Watches that start from now on make a ``connect <provider>`` span per
    handshake and a ``process <provider>`` span per event, current while
    its hooks run and linked to its connection's span; a plugin that fails
    on an event has its error recorded on that event's span.  Calling it
    again replaces the provider, for watches that start after.
    ``ConfigurationError`` without ``opentelemetry-api``.
    """
    try:
        from ._observe.tracing import WatchTracer
    except ImportError:
        raise ConfigurationError("tracing needs OpenTelemetry: pip install 'livecall[otel]'") from None
    registry.set_tracer(WatchTracer(tracer_provider))


def disable_tracing() -> None:
    """Make no more spans: watches that start from now on make none, and :func:`traceparent` is None.

    Watches under way keep their tracer until they end.  Nothing happens if
    tracing was off.
    """
    registry.set_tracer(None)


def traceparent() -> Optional[str]:
    """The W3C ``traceparent`` of the event whose hooks run now, for a plugin to pass on.

    None while tracing is off, or outside any span (say, in
    ``livecall_call_start``).  A plugin that sends the event on sends this
    with it (an HTTP ``traceparent`` header, a message field), so that the
    receiver's spans join the event's trace.
    """
    if registry.tracer() is None:
        return None
    from ._observe.tracing import current_traceparent

    return current_traceparent()


def _collector() -> Any:
    """livecall's Prometheus collector; timings are switched on from now."""
    try:
        from ._observe.metrics import LivecallCollector
    except ImportError:
        raise ConfigurationError("metrics need prometheus_client: pip install 'livecall[metrics]'") from None
    registry.switch_timing_on()
    return LivecallCollector(hub_turn_age, lambda: [provider.name for provider in providers()])
