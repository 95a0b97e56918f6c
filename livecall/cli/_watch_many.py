"""``livecall watch-many``: many calls at once in one process, listed as JSON lines.

Each line is one call: ``provider`` plus the fields of a request for it,
read by the provider as a worker reads a request from its queue
(:meth:`Provider.client_from_fields`): ``conversation_id``, ``user_id``,
``conversation_token``, ``url``, ``max_retries``...; besides, ``join``, and,
where allowed, a renewable credential's command (``token_command``,
``api_key_command``), as ``livecall watch`` takes them.  Lines are checked
by :mod:`._many_lines`.  Credentials not given come from the environment as
for ``watch``.  Every line is checked, then every client built, before any
call is watched, so a typo fails the run up front.  The command exits once
every watch is over, with the worst exit status among them.
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
from ._lifecycle import configured
from ._many_lines import DEFAULT_MAX_LINE_BYTES, Line, LineRules, read_lines
from ._numbers import positive_count
from ._signals import signals
from ._watch import _join, client_options, running_plugins, url_argument

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
        "for that provider (conversation_id; conversation_token and user_id; url, max_retries...) "
        "and join for a Hiya call. Bearer tokens and API keys come from the environment as for "
        "`watch`. Exits once every call has ended, with the worst status.",
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
    parser.set_defaults(func=watch_many_command)


def watch_many_command(config: Config) -> int:
    options = config.options
    rules = LineRules(options.allow_url, options.allow_line_commands, options.max_line_bytes)
    source: IO[bytes] = options.file
    with source:
        lines = read_lines(source, rules)
    watches = [_client(config, line) for line in lines]
    with configured(config):
        return _watch_all(watches, config)


def _client(config: Config, line: Line) -> tuple[LiveClient, bool]:
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
    return client, line.join


def _join_or_fail(client: LiveClient, ready: threading.Event, config: Config) -> None:
    """Join as ``livecall watch --join`` does; a call that could not be joined fails the run."""
    assert isinstance(client, HiyaClient)  # only Hiya has --join
    problem = _join(client, ready)
    if problem is not None and signals.received is None:
        config.fail(ExitStatus.FAILURE, f"call {client.call.id}: could not join the call: {problem}")


def _set(ready: threading.Event, call: object, event: object) -> None:
    ready.set()


def _close_all(clients: list[LiveClient]) -> None:
    """Every close frame goes out at once, without waiting: then the watches end together."""
    for client in clients:
        client.close(timeout=0)


def _watch_all(watches: list[tuple[LiveClient, bool]], config: Config) -> int:
    """Start every watch without waiting, join those asked to, wait for all; the worst status.

    A signal closes them all from another thread, which ends the wait.
    """
    clients = [client for client, _ in watches]
    joins = []
    try:
        with signals.stopping(
            functools.partial(_close_all, clients), busy=functools.partial(running_plugins, clients)
        ):
            for client, join in watches:
                if join:
                    ready = threading.Event()
                    client.on(CallStarted, functools.partial(_set, ready))
                    joins.append(
                        threading.Thread(target=_join_or_fail, args=(client, ready, config), daemon=True)
                    )
                client.start(wait=False)
            for thread in joins:
                thread.start()
            wait_all(clients)
    finally:
        _close_all(clients)
        wait_all(clients, _CLOSE_WAIT)
    status: int = ExitStatus.OK
    for client in clients:
        try:
            client.wait(0)
        except LivecallError as error:
            message = printable(redact(f"livecall: error: call {client.call.id}: {describe(error)}"))
            print(message, file=sys.stderr, flush=True)
            status = max(status, status_for(error))
    return status
