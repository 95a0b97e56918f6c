"""``--metrics-port``: ``/metrics``, ``/healthz`` and ``/readyz`` while a command watches its calls.

``livecall watch`` (and ``record``) and ``livecall watch-many`` serve the
process's endpoint (:func:`livecall.observability.serve`) from before their
first watch starts until their last one is over, however the command ends.
``/readyz`` answers whether a connection is open now.  Without the option,
nothing is served, and neither the endpoint nor ``prometheus_client`` is
imported.
"""

import argparse
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any, Callable

from .._observe.health import DEFAULT_STALE_AFTER
from .._watch.client import LiveClient
from ..errors import ConfigurationError
from ._numbers import port, positive_seconds

__all__ = ["DEFAULT_HOST", "any_connected", "metrics_options", "metrics_served"]

log = logging.getLogger("livecall.cli")

#: Loopback: metrics and probes are for this machine unless the user says otherwise.
DEFAULT_HOST = "127.0.0.1"

#: What ``/readyz`` asks: whether the command watches now, and why not.
Ready = Callable[[], tuple[bool, str]]


def metrics_options(parser: Any) -> None:
    """``--metrics-port``, ``--metrics-host`` and ``--stale-after``, in a group of their own."""
    group = parser.add_argument_group("metrics and health (needs the metrics extra: livecall[metrics])")
    group.add_argument(
        "--metrics-port",
        metavar="PORT",
        type=port,
        help="serve Prometheus metrics (/metrics) and probes (/healthz, /readyz) on this port while "
        "watching; 0 picks a free one, which -v says (default: none served)",
    )
    group.add_argument(
        "--metrics-host",
        metavar="HOST",
        type=_host,
        help=f"the address to serve them on (default: {DEFAULT_HOST}; 0.0.0.0 for every interface)",
    )
    group.add_argument(
        "--stale-after",
        metavar="SECONDS",
        type=positive_seconds,
        help="/healthz fails when an open connection has heard nothing for this long "
        f"(default: {DEFAULT_STALE_AFTER:g})",
    )


def any_connected(clients: Sequence[LiveClient], why_not: str) -> Ready:
    """``/readyz``'s check: ready while any of ``clients`` has its connection open."""

    def ready() -> tuple[bool, str]:
        return any(client.connected for client in clients), why_not

    return ready


@contextlib.contextmanager
def metrics_served(options: argparse.Namespace, ready: Ready) -> Iterator[None]:
    """The endpoint, served for the block when ``--metrics-port`` was given, and closed after it.

    ``ConfigurationError`` (exit status 2) without ``prometheus_client``,
    for a port that cannot be bound, or for ``--metrics-host`` or
    ``--stale-after`` without ``--metrics-port``.
    """
    if options.metrics_port is None:
        for name in ("metrics_host", "stale_after"):
            if getattr(options, name) is not None:
                raise ConfigurationError(f"--{name.replace('_', '-')} needs --metrics-port")
        yield
        return
    from .. import observability  # only now: a watch without metrics imports none of it

    stale_after = DEFAULT_STALE_AFTER if options.stale_after is None else options.stale_after
    endpoint = observability.serve(
        options.metrics_port, options.metrics_host or DEFAULT_HOST, ready=ready, stale_after=stale_after
    )
    with endpoint:
        log.info("metrics on %s/metrics, probes on /healthz and /readyz", endpoint.url)
        yield


def _host(text: str) -> str:
    """A host name or address to listen on; an empty one would silently mean every interface."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):  # an IPv6 address as a URL writes it
        host = host[1:-1]
    if not host or not host.isprintable() or any(character.isspace() for character in host):
        raise argparse.ArgumentTypeError(f"expected a host name or address, not {text!r}")
    return host
