"""``livecall watch-many``: many calls at once in one process, listed as JSON lines.

Each line is one call: ``provider`` plus the fields of a request for it,
read by the provider as a worker reads a request from its queue
(:meth:`Provider.client_from_fields`): ``conversation_id``, ``user_id``,
``conversation_token``, ``url``, ``max_retries``...; besides, ``join``, and
a renewable credential's command (``token_command``, ``api_key_command``),
as ``livecall watch`` takes them.  Credentials not given come from the
environment as for ``watch``.  Every line is checked before any call is
watched, so a typo fails the run up front.  The command exits once every
watch is over, with the worst exit status among them.
"""

import argparse
import functools
import json
import sys
import threading
from collections.abc import Iterator
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
from ._signals import signals
from ._watch import PROVIDERS, _join, client_options

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
        type=argparse.FileType("r"),
        default=sys.stdin,
        help="default: stdin",
    )
    parser.set_defaults(func=watch_many_command)


def watch_many_command(config: Config) -> int:
    source: IO[str] = config.options.file
    with source:
        watches = [_client(config, number, fields) for number, fields in _lines(source)]
    with configured(config):
        return _watch_all(watches, config)


def _lines(source: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
        except ValueError:
            raise ConfigurationError(f"line {number} is not JSON") from None
        if not isinstance(fields, dict):
            raise ConfigurationError(f"line {number} is not a JSON object")
        yield number, fields


def _client(config: Config, number: int, fields: dict[str, Any]) -> tuple[LiveClient, bool]:
    """The line's client, built from its fields as a worker builds one from a request; and whether to join."""
    fields = dict(fields)
    provider = PROVIDERS.get(str(fields.pop("provider", "")))
    if provider is None:
        raise ConfigurationError(f"line {number}: provider must be one of {', '.join(PROVIDERS)}")
    join = fields.pop("join", False)
    options = client_options(config)
    try:
        if not isinstance(join, bool):
            raise ConfigurationError("join must be true or false")
        for field in provider.fields:
            command = fields.pop(f"{field.name}_command", None) if field.renewable else None
            if command is not None:
                if not isinstance(command, str):
                    raise ConfigurationError(f"{field.name}_command must be text")
                options[field.name] = provider.credential_source(
                    field.name, command=command, plugin_manager=config.plugin_manager
                )
        client = provider.client_from_fields(fields, **options)
        if join and not isinstance(client, HiyaClient):
            raise ConfigurationError(f"join: {provider.description} cannot be joined")
    except ConfigurationError as error:
        raise ConfigurationError(f"line {number}: {error}") from None
    return client, join


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
        with signals.stopping(functools.partial(_close_all, clients)):
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
