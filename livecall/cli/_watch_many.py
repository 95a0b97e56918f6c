"""``livecall watch-many``: many calls at once in one process, listed as JSON lines.

Each line is one call: ``provider`` plus the fields of a request for it,
read by the provider as a worker reads a request from its queue
(:meth:`Provider.client_from_fields`): ``conversation_id``, ``user_id``,
``conversation_token``, ``url``, ``max_retries``...; besides, ``join``,
``max_duration`` and ``idle_timeout``, and, where allowed, a renewable
credential's command (``token_command``, ``api_key_command``), as
``livecall watch`` takes them.  Lines are checked by :mod:`._many_lines`.
Credentials not given come from the environment as for ``watch``.  Every
line is checked, then every client built, before any call is watched, so a
typo fails the run up front.  The command keeps ``watch``'s promises for
every call: its time limits (the line's and the command's, whichever passes
first) end it with exit status 6, and a reader of stdout gone ends them all
with 0.  It exits once every watch is over, with the worst exit status
among them.  With ``--metrics-port``, ``/readyz`` is ready while any watch
has its connection open.
"""

import argparse
import functools
import sys
import threading
from typing import IO, Any

from .._exit_status import ExitStatus
from .._safety.printable import printable
from .._safety.secrets import redact
from .._watch.client import LiveClient
from .._watch.waiting import wait_all
from ..config import Config
from ..errors import ConfigurationError, LivecallError
from ..events import CallStarted
from ..hiya import HiyaClient
from ._exit import describe, status_for
from ._guard import WatchGuard, time_limits
from ._lifecycle import configured
from ._logging import CHECKS_FIRST
from ._many_lines import DEFAULT_MAX_LINE_BYTES, Line, LineRules, read_lines
from ._metrics import any_connected, metrics_options, metrics_served
from ._numbers import positive_count
from ._signals import signals
from ._watch import (
    _join,
    client_options,
    connect_timeout_option,
    running_plugins,
    time_limit_options,
    url_argument,
)

__all__ = ["add_parser"]

#: Seconds the watches get to end after a signal, together.
_CLOSE_WAIT = 3.0


def add_parser(subparsers: Any, plugin_options: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "watch-many",
        parents=[plugin_options],
        help="watch many calls at once, listed as JSON lines",
        description="Watch every call listed in FILE (default: standard input), one JSON object "
        'per line: {"provider": "phonic", "conversation_id": "..."}, with the fields of a request '
        "for that provider (conversation_id; conversation_token and user_id; url, max_retries...), "
        "join for a Hiya call, and max_duration and idle_timeout in seconds, as --max-duration and "
        "--idle-timeout for that call alone. Bearer tokens and API keys come from the environment as "
        "for `watch`. With --format text, each line starts with its call's id in brackets. Exits once "
        "every call has ended, with the worst status.",
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        type=argparse.FileType("rb"),
        default="-",
        help="default: stdin",
    )
    parser.add_argument(
        "--allow-url",
        metavar="BASE",
        action="append",
        type=url_argument,
        default=[],
        help="a base URL lines may name in their url besides the provider's own: its scheme, host "
        "and port, where the environment's credentials go (repeatable)",
    )
    parser.add_argument(
        "--allow-line-commands",
        action="store_true",
        help="let lines run programs for their credentials (token_command, api_key_command)",
    )
    parser.add_argument(
        "--max-line-bytes",
        metavar="N",
        type=positive_count,
        default=DEFAULT_MAX_LINE_BYTES,
        help="refuse a line longer than this (default: %(default)s)",
    )
    connect_timeout_option(parser)
    time_limit_options(parser, "for every call, besides a line's own; exit status 6 if one ends a call")
    metrics_options(parser)
    # The text transcript marks whose each line is: the calls' lines interleave.
    parser.set_defaults(func=watch_many_command, interleaved=True, **{CHECKS_FIRST: True})


def watch_many_command(config: Config) -> int:
    options = config.options
    rules = LineRules(options.allow_url, options.allow_line_commands, options.max_line_bytes)
    source: IO[bytes] = options.file
    with source:
        lines = read_lines(source, rules)
    watches = [(_client(config, line), line) for line in lines]
    options.join = any(line.join for line in lines)  # an ack is then a join's, as for `watch --join`
    clients = [client for client, _ in watches]
    with metrics_served(options, any_connected(clients, "no watch connected")), configured(config):
        return _watch_all(watches, config)


def _client(config: Config, line: Line) -> LiveClient:
    """The line's client, built from its fields as a worker builds one from a request; and whether to join."""
    options = client_options(config)
    try:
        for name, command in line.commands.items():
            options[name] = line.provider.credential_source(
                name, command=command, plugin_manager=config.plugin_manager
            )
        client = line.provider.client_from_fields(line.fields, **options)
        if line.join and not isinstance(client, HiyaClient):
            raise ConfigurationError(f"join: {line.provider.description} cannot be joined")
    except ConfigurationError as error:
        raise ConfigurationError(f"line {line.number}: {error}") from None
    return client


def _join_or_fail(client: LiveClient, ready: threading.Event, config: Config, guard: WatchGuard) -> None:
    """Join as ``livecall watch --join`` does; a call that could not be joined fails the run,
    unless the watch was stopped on purpose first."""
    assert isinstance(client, HiyaClient)  # only Hiya has --join
    problem = _join(client, ready)
    if problem is not None and not guard.fired and signals.received is None:
        config.fail(ExitStatus.FAILURE, f"call {client.call.id}: could not join the call: {problem}")


def _set(ready: threading.Event, call: object, event: object) -> None:
    ready.set()


def _close_all(clients: list[LiveClient]) -> None:
    """Every close frame goes out at once, without waiting: then the watches end together."""
    for client in clients:
        client.close(timeout=0)


def _watch_all(watches: list[tuple[LiveClient, Line]], config: Config) -> int:
    """Start every watch without waiting, join those asked to, wait for all; the worst status.

    A signal closes them all from another thread, which ends the wait; so
    does the guard, for a watch past its time limits, or all of them once
    nobody reads stdout.
    """
    options = config.options
    clients = [client for client, _ in watches]
    joins = []
    guard = WatchGuard(config.stdout)
    try:
        with signals.stopping(
            functools.partial(_close_all, clients), busy=functools.partial(running_plugins, clients)
        ):
            for client, line in watches:
                limits = time_limits(options.max_duration, options.idle_timeout)
                limits += time_limits(line.max_duration, line.idle_timeout, line=line.number)
                guard.add(client, limits, label=f"call {client.call.id}: ")
                if line.join:
                    ready = threading.Event()
                    client.on(CallStarted, functools.partial(_set, ready))
                    joins.append(
                        threading.Thread(
                            target=_join_or_fail, args=(client, ready, config, guard), daemon=True
                        )
                    )
            with guard:
                for client in clients:
                    client.start(wait=False)
                for thread in joins:
                    thread.start()
                wait_all(clients)
    finally:
        _close_all(clients)
        wait_all(clients, _CLOSE_WAIT)
    status: int = ExitStatus.TIME_LIMIT if guard.time_limited else ExitStatus.OK
    for client in clients:
        try:
            client.wait(0)
        except LivecallError as error:
            message = printable(redact(f"livecall: error: call {client.call.id}: {describe(error)}"))
            print(message, file=sys.stderr, flush=True)
            status = max(status, status_for(error))
    return status
