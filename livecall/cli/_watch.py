"""``livecall watch hiya|phonic``: one call, from the handshake to the exit status."""

import argparse
import inspect
import logging
import threading
import time
from typing import Any, Optional

from .._client import LiveClient
from ..config import Config
from ..errors import ConnectionLostError, LivecallError
from ..events import CallStarted, Event
from ..hiya import HIYA, HiyaClient
from ..phonic import PHONIC
from ._exit import FAILURE
from ._lifecycle import configured

__all__ = ["add_parser", "client_options", "watch"]

log = logging.getLogger("livecall.cli")

#: Every provider the command watches; each brings its own arguments.
PROVIDERS = {provider.name: provider for provider in (HIYA, PHONIC)}
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
    providers = watch.add_subparsers(dest="provider", metavar="PROVIDER", required=True)
    parents = [_connection_options(), plugin_options]
    for provider in PROVIDERS.values():
        parser = providers.add_parser(
            provider.name,
            parents=parents,
            help=provider.description,
            description=f"Watch {provider.description}.",
        )
        provider.add_arguments(parser)
        parser.set_defaults(func=watch_command)


def watch_command(config: Config) -> None:
    options = config.options
    common = client_options(config, **_connection(options))
    client = PROVIDERS[options.provider].from_arguments(options, common)  # bad input fails before plugins act
    with configured(config):
        join_after = CallStarted if getattr(options, "join", False) else None
        watch(client, config, join_after=join_after)


def watch(client: LiveClient, config: Config, join_after: Optional[type[Event]] = None) -> None:
    """Watch the call to its end; a signal closes the client (a close frame) on the way out.

    With ``join_after``, a Hiya call is joined once an event of that type came.
    Raises what ended the watch badly: ``AuthenticationError``,
    ``RetriesExhaustedError``, ``Interrupted``...
    """
    ready = threading.Event()
    if join_after is not None:
        client.on(join_after, lambda call, event: ready.set())
    try:
        client.start()
        if join_after is not None:
            _join(client, ready, config)
        client.wait()
    finally:
        client.close()


def _join(client: LiveClient, ready: threading.Event, config: Config) -> None:
    """Join when ``ready``, again on the next connection if this one was lost meanwhile.

    Failing to join leaves the call watched, and the run failed.  Only Hiya
    offers ``--join``.
    """
    assert isinstance(client, HiyaClient)
    deadline = time.monotonic() + JOIN_WAIT
    problem = "it was not ready to join"
    while True:
        if ready.is_set():
            try:
                ack = client.join_call(ACK_TIMEOUT)
            except ConnectionLostError as error:
                problem = str(error)
            except LivecallError as error:
                problem = str(error)
                break
            else:
                log.info("joined the call (ack %s)", ack.ack_id)
                return
        if client.wait(_POLL) or time.monotonic() >= deadline:
            break
    config.fail(FAILURE, f"could not join the call: {problem}")


def _connection_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("connection")
    group.add_argument("--url", metavar="BASE", help="the provider's WebSocket base URL (ws:// or wss://)")
    group.add_argument(
        "--max-retries",
        metavar="N",
        type=_count,
        default=_CLIENT_DEFAULTS["max_retries"],
        help="reconnect attempts before giving up (default: %(default)s)",
    )
    group.add_argument(
        "--ping-interval",
        metavar="S",
        type=_seconds,
        default=_CLIENT_DEFAULTS["ping_interval"],
        help="ping after this many seconds of silence (default: %(default)s)",
    )
    group.add_argument(
        "--ping-timeout",
        metavar="S",
        type=_seconds,
        default=_CLIENT_DEFAULTS["ping_timeout"],
        help="the connection is dead when a ping is not answered within this (default: %(default)s)",
    )
    return parser


def client_options(config: Config, **options: Any) -> dict[str, Any]:
    """What every client the command builds has: the run's plugins and a quick close."""
    return dict(options, close_timeout=CLOSE_TIMEOUT, plugin_manager=config.plugin_manager)


def _connection(options: argparse.Namespace) -> dict[str, Any]:
    return dict(
        url=options.url,
        max_retries=options.max_retries,
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout,
    )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, not {text!r}")
    return value
