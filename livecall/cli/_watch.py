"""``livecall watch hiya|phonic``: one call, from the handshake to the exit status."""

import argparse
import functools
import inspect
import logging
import threading
import time
from typing import Any, Callable, Optional

from .._exit_status import ExitStatus
from .._watch.client import LiveClient
from .._watch.provider import providers
from .._wire.checks import base_url
from ..config import Config
from ..errors import ConfigurationError, ConnectionLostError, LivecallError
from ..events import CallStarted, Event
from ..hiya import HiyaClient
from ._guard import WatchGuard, time_limits
from ._lifecycle import configured
from ._logging import CHECKS_FIRST
from ._metrics import any_connected, metrics_options, metrics_served
from ._numbers import count, positive_seconds
from ._signals import signals

__all__ = [
    "add_parser",
    "add_providers",
    "client_options",
    "connect_timeout_option",
    "running_plugins",
    "time_limit_options",
    "url_argument",
    "watch",
    "watch_and_join",
    "watch_command",
]

log = logging.getLogger("livecall.cli")

#: Every provider the command watches (each registers itself); each brings its own arguments.
PROVIDERS = {provider.name: provider for provider in providers()}
#: How long ``--join`` waits for the call to be ready to join, and then for the server's ack.
JOIN_WAIT = 30.0
ACK_TIMEOUT = 10.0
#: Seconds the server has to answer our close frame: with the threads' join, a
#: signal ends the command within about two seconds.
CLOSE_TIMEOUT = 1.0
_POLL = 0.1

_CLIENT_DEFAULTS = {
    name: parameter.default for name, parameter in inspect.signature(LiveClient).parameters.items()
}


def add_parser(subparsers: Any, plugin_options: argparse.ArgumentParser) -> None:
    watch = subparsers.add_parser(
        "watch",
        help="watch a live call and print it as it happens",
        description="Watch a live call; every event goes to the plugins, and to stdout "
        "as a readable transcript (--format text) or JSON lines (--format jsonl).",
    )
    add_providers(watch, [plugin_options], watch_command, "Watch")


def add_providers(
    command: argparse.ArgumentParser,
    parents: list[argparse.ArgumentParser],
    func: Callable[[Config], Optional[int]],
    verb: str,
) -> None:
    """A subcommand of ``command`` per provider, running ``func``: the watch's options, ``parents``'
    and the provider's own (``livecall watch`` and ``livecall record`` take the same)."""
    providers = command.add_subparsers(dest="provider", metavar="PROVIDER", required=True)
    for provider in PROVIDERS.values():
        parser = providers.add_parser(
            provider.name,
            parents=[_connection_options(provider.default_url), *parents],
            help=provider.description,
            description=f"{verb} {provider.description}.",
        )
        provider.add_arguments(parser)
        parser.set_defaults(func=func, **{CHECKS_FIRST: True})


def watch_command(
    config: Config, prepare: Callable[[LiveClient], object] = lambda client: None
) -> Optional[int]:
    """``livecall watch``; ``prepare(client)`` runs once the client is made (and ``--metrics-port``
    served), before the plugins are configured (``livecall record`` starts its recording there)."""
    options = config.options
    common = client_options(config, **_connection(options))
    client = PROVIDERS[options.provider].from_arguments(options, common)  # bad input fails before plugins act
    # Served before the plugins are configured, so /readyz says "not connected" meanwhile.
    with metrics_served(options, any_connected([client], "not connected")):
        prepare(client)
        with configured(config):
            if isinstance(client, HiyaClient) and getattr(options, "join", False):
                return watch_and_join(client, config, after=CallStarted)
            return watch(client, config)


def watch(client: LiveClient, config: Config) -> Optional[int]:
    """Watch the call to its end; a signal closes the client (a close frame) on the way out.

    Returns ``ExitStatus.TIME_LIMIT`` when ``--max-duration`` or
    ``--idle-timeout`` ended the watch.  A reader of stdout gone ends it too,
    as the call would.  Raises what ended the watch badly:
    ``AuthenticationError``, ``RetriesExhaustedError``, ``Interrupted``...
    """
    return _run(client, config, lambda guard: None)


def watch_and_join(client: HiyaClient, config: Config, after: type[Event]) -> Optional[int]:
    """Watch a Hiya call to its end like ``watch()``, joining it once an event of type ``after`` came."""
    ready = threading.Event()
    client.on(after, lambda call, event: ready.set())

    def join(guard: WatchGuard) -> None:
        problem = _join(client, ready)
        if problem is not None and not guard.fired and signals.received is None:
            config.fail(ExitStatus.FAILURE, f"could not join the call: {problem}")

    return _run(client, config, join)


def _run(client: LiveClient, config: Config, once_started: Callable[[WatchGuard], None]) -> Optional[int]:
    """``start()``, ``once_started()``, ``wait()`` within the time limits; ``close()`` whatever happens.

    A signal closes the client from another thread, which ends the wait.
    """
    options = config.options
    with signals.stopping(client.close, busy=functools.partial(running_plugins, [client])):
        guard = WatchGuard(config.stdout)
        guard.add(
            client,
            time_limits(getattr(options, "max_duration", None), getattr(options, "idle_timeout", None)),
        )
        try:
            with guard:
                client.start()
                once_started(guard)
                client.wait()
        finally:
            client.close()
    return ExitStatus.TIME_LIMIT if guard.time_limited else None


def running_plugins(clients: list[LiveClient]) -> list[str]:
    """The call and plugin of every client whose dispatcher is in a plugin's hook or callback now.

    Safe from any thread: it reads what each dispatcher says it runs (a
    plain attribute), as the hub's watchdog does for its warning.
    """
    return [client._describe() for client in clients if client._dispatcher.running]


def _join(client: HiyaClient, ready: threading.Event) -> Optional[str]:
    """Join when ``ready``, again on the next connection if this one was lost meanwhile.

    Returns why it could not join (None: it did); the call is watched either way.
    """
    deadline = time.monotonic() + JOIN_WAIT
    problem = "it was not ready to join"
    while True:
        if ready.is_set():
            try:
                ack = client.join_call(ACK_TIMEOUT)
            except ConnectionLostError as error:
                problem = str(error)
            except LivecallError as error:
                return str(error)
            else:
                log.info("joined the call (ack %s)", ack.ack_id)
                return None
        if client.wait(_POLL) or time.monotonic() >= deadline:
            return problem


def _connection_options(default_url: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        metavar="BASE",
        type=url_argument,
        # None: the client's own default, read when the client is made.
        help=f"the provider's WebSocket base URL, ws:// or wss:// (default: {default_url})",
    )
    connect_timeout_option(group)
    group.add_argument(
        "--max-retries",
        metavar="N",
        type=count,
        default=_CLIENT_DEFAULTS["max_retries"],
        help="reconnect attempts before giving up (default: %(default)s)",
    )
    group.add_argument(
        "--ping-interval",
        metavar="S",
        type=positive_seconds,
        default=_CLIENT_DEFAULTS["ping_interval"],
        help="ping after this many seconds of silence (default: %(default)s)",
    )
    group.add_argument(
        "--ping-timeout",
        metavar="S",
        type=positive_seconds,
        default=_CLIENT_DEFAULTS["ping_timeout"],
        help="the connection is dead when a ping is not answered within this (default: %(default)s)",
    )
    time_limit_options(parser, "either ends the watch with exit status 6")
    metrics_options(parser)
    return parser


def connect_timeout_option(parser: Any) -> None:
    """``--connect-timeout``: how long one connection attempt may take, handshake included."""
    parser.add_argument(
        "--connect-timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=_CLIENT_DEFAULTS["connect_timeout"],
        help="give up a connection attempt (TCP, TLS, proxy and WebSocket handshake) after this long; "
        "it counts as a failed attempt (default: %(default)s)",
    )


def time_limit_options(parser: argparse.ArgumentParser, effect: str) -> None:
    """``--max-duration`` and ``--idle-timeout``, in a group whose title says ``effect``."""
    limits = parser.add_argument_group(f"time limits ({effect})")
    limits.add_argument(
        "--max-duration",
        metavar="SECONDS",
        type=positive_seconds,
        help="stop watching after this long, whether or not the call is over (default: no limit)",
    )
    limits.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=positive_seconds,
        help="stop watching when no event came for this long (default: no limit)",
    )


def client_options(config: Config, **options: Any) -> dict[str, Any]:
    """What every client the command builds has: the run's plugins, a quick close, and
    ``--connect-timeout`` where the command has it."""
    connect_timeout = getattr(config.options, "connect_timeout", _CLIENT_DEFAULTS["connect_timeout"])
    return dict(
        options,
        close_timeout=CLOSE_TIMEOUT,
        connect_timeout=connect_timeout,
        plugin_manager=config.plugin_manager,
    )


def _connection(options: argparse.Namespace) -> dict[str, Any]:
    return dict(
        url=options.url,
        max_retries=options.max_retries,
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout,
    )


def url_argument(text: str) -> str:
    """The client's own check, at parse time: an empty ``--url`` is a mistake, not the default."""
    try:
        return base_url(text)
    except ConfigurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
