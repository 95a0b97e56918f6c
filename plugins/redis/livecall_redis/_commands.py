"""The command line of the Redis plugin: ``livecall worker``, ``enqueue``, ``status`` and ``requeue``.

Options are parsed and checked here, before Redis is reached or a process
starts; the work is the other modules'.
"""

import argparse
import contextlib
import importlib.util
import math
import os
import threading
from collections.abc import Iterator
from typing import Any, Optional

import attrs

import livecall
import livecall.observability

from ._processes import DEFAULT_METRICS_HOST, Serving, run_processes, run_worker
from ._requests import DEFAULT_REQUESTS, WatchRequest, enqueue
from ._requeue import all_dead_letters, requeue
from ._settings import (
    DRAIN_MODES,
    WorkerSettings,
    redis_place,
)
from ._shards import check_mode, connect
from ._signals import second_signal
from ._status import read_status

__all__ = ["REDIS_URL_ENV", "livecall_register_commands"]

#: Where ``--redis`` is read from when not given (it may hold a password).
REDIS_URL_ENV = "LIVECALL_REDIS_URL"
#: The highest TCP port.
_MAX_PORT = 65535
#: The command's defaults are the settings' own.
_DEFAULTS = attrs.fields(WorkerSettings)
#: ``livecall worker`` options that set the setting of the same name: (name, metavar, help).
_TUNING = (
    ("calls", "N", "calls per process (fewer where its open files allow fewer)"),
    ("lease", "S", "seconds a call stays held without renewal"),
    ("renew", "S", "seconds between renewals"),
    ("max_deliveries", "N", "deliveries of one request before it goes to the dead-letter stream"),
    ("max_request_bytes", "N", "a request holding more bytes goes to the dead-letter stream unread"),
    ("hub_stall", "S", "seconds the hub may go without a turn before leases are left to lapse"),
    ("key_ttl", "S", "seconds the keys written for a call are kept after its last write, against duplicates"),
)


@livecall.hookimpl
def livecall_register_commands(subparsers: Any) -> None:
    _add_worker(subparsers)
    _add_enqueue(subparsers)
    _add_status(subparsers)
    _add_requeue(subparsers)


def _redis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        type=livecall.Credential,
        help=f"redis:// or rediss:// URL (default: ${REDIS_URL_ENV})",
    )


#: The streams and the group a command works on: (option, setting, help).
_STREAMS = {
    "requests": ("--requests", "KEY", "the requests stream"),
    "group": ("--group", "NAME", "the workers' consumer group"),
    "events": ("--events", "KEY", "the events stream"),
    "dead_letter": ("--dead-letter", "KEY", "the dead-letter stream"),
}


def _stream_options(parser: Any, *names: str) -> None:
    """The options naming the streams and group ``names`` (settings' names), with the workers' defaults."""
    for name in names:
        option, metavar, help_text = _STREAMS[name]
        default = getattr(_DEFAULTS, name).default
        parser.add_argument(
            option, metavar=metavar, default=default, help=f"{help_text} (default: %(default)s)"
        )


def _shard_options(parser: Any) -> None:
    """``--shards`` and ``--cluster``: how the streams are laid out, the same for every command."""
    parser.add_argument(
        "--shards",
        metavar="N",
        type=_shard_count,
        default=_DEFAULTS.shards.default,
        help="requests streams the workers read together, each with its own events and dead-letter "
        "streams, named KEY:{0} to KEY:{N-1} above 1; the same N for every command "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="Redis is a cluster (--redis names any node): each shard's keys share a hash tag, "
        "KEY:{0} even with one shard",
    )


def _shard_count(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, not {text!r}")
    return int(text)


def _redis_url(options: argparse.Namespace) -> str:
    url = (options.redis or livecall.Credential(env=REDIS_URL_ENV)).get()
    if not url:
        raise livecall.ConfigurationError(f"where is Redis? --redis URL or ${REDIS_URL_ENV}")
    return url


@contextlib.contextmanager
def _reaching_redis(what: str, url: str) -> Iterator[None]:
    """A Redis that cannot be reached, or refuses, is one line and exit status 1, from every command.

    Not a usage error (2): the same command may work once Redis is back, and a
    service manager restarting a worker should tell the two apart.
    """
    import redis

    try:
        yield
    except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
        raise livecall.LivecallError(
            f"could not {what}: Redis at {redis_place(url)} failed ({type(error).__name__})"
        ) from None


def _add_worker(subparsers: Any) -> None:
    worker = subparsers.add_parser(
        "worker",
        help="watch the calls requested on a Redis stream, with other workers",
        description="Take watch requests from a Redis stream in a consumer group, watch each call, "
        "and write its events to an events stream; calls of a worker that stops renewing its "
        "leases are taken over.  Runs until interrupted.",
    )
    _redis_option(worker)
    group = worker.add_argument_group("workers")
    group.add_argument(
        "--processes", metavar="N", type=int, default=1, help="worker processes (default: %(default)s)"
    )
    for name, metavar, help_text in _TUNING:
        default = getattr(_DEFAULTS, name).default
        group.add_argument(
            f"--{name.replace('_', '-')}",
            metavar=metavar,
            type=type(default),
            default=default,
            help=f"{help_text} (default: %(default)s)",
        )
    group.add_argument("--hiya-url", metavar="BASE", help="Hiya's base URL for requests that name none")
    group.add_argument("--phonic-url", metavar="BASE", help="Phonic's base URL for requests that name none")
    group.add_argument(
        "--allow-url",
        metavar="PROVIDER=URL",
        action="append",
        default=[],
        help="where the provider's requests may connect (scheme, host and port of a ws:// or wss:// "
        "URL), besides the worker's own base URL for it (repeatable; its credentials go there)",
    )
    group.add_argument("--allow-host", type=_allow_host_gone, help=argparse.SUPPRESS)
    group.add_argument(
        "--hiya-token-command",
        metavar="CMD",
        help="run CMD for a fresh Hiya bearer token on every connection attempt (default: $HIYA_TOKEN)",
    )
    group.add_argument(
        "--keep-words",
        action="store_true",
        help="write the words of Phonic calls whose owner asked for zero data retention to the events "
        "stream too; by default their events are written without words",
    )
    _time_limit_options(
        worker,
        "for calls whose request sets none; a call that reaches one is acknowledged, not retried",
        "no limit",
    )
    _drain_options(worker)
    metrics = worker.add_argument_group(
        "metrics and health (needs the metrics extra: livecall-redis[metrics])"
    )
    metrics.add_argument(
        "--metrics-port",
        metavar="PORT",
        type=_port,
        help="serve Prometheus metrics (/metrics) and probes (/healthz, /readyz) on this port; with "
        "--processes N, on PORT to PORT+N-1; 0 picks free ones, which the worker says (default: none served)",
    )
    metrics.add_argument(
        "--metrics-host",
        metavar="HOST",
        type=_host,
        help=f"the address to serve them on (default: {DEFAULT_METRICS_HOST}; 0.0.0.0 for every interface)",
    )
    metrics.add_argument(
        "--stale-after",
        metavar="SECONDS",
        type=_seconds,
        help="/healthz fails when an open connection has heard nothing for this long "
        f"(default: {livecall.observability.DEFAULT_STALE_AFTER:g})",
    )
    streams = worker.add_argument_group("streams")
    _stream_options(streams, "requests", "group", "events", "dead_letter")
    _shard_options(streams)
    streams.add_argument(
        "--events-maxlen",
        metavar="N",
        type=int,
        default=_DEFAULTS.events_maxlen.default,
        help="trim the events stream to about N entries (default: %(default)s)",
    )
    worker.set_defaults(func=worker_command)


def _drain_options(parser: argparse.ArgumentParser) -> None:
    """``--drain`` and ``--drain-timeout``: what a stopping worker does with the calls it holds."""
    drain = parser.add_argument_group(
        "stopping (SIGTERM or Ctrl-C: the worker takes no more calls and drains; a second one "
        "gives back at once what it still holds)"
    )
    drain.add_argument(
        "--drain",
        choices=DRAIN_MODES,
        default=_DEFAULTS.drain.default,
        help="handover: each call is claimed by another worker while this one still watches it, "
        "and let go once that worker has written for it; wait: each call is watched to its end; "
        "release: each call is given back at once (default: %(default)s)",
    )
    drain.add_argument(
        "--drain-timeout",
        metavar="SECONDS",
        type=_seconds,
        default=_DEFAULTS.drain_timeout.default,
        help="the calls still held after this long are given back (default: %(default)s)",
    )


def _time_limit_options(parser: argparse.ArgumentParser, effect: str, default: str) -> None:
    """``--max-duration`` and ``--idle-timeout``: as ``livecall watch`` has them, for held calls."""
    limits = parser.add_argument_group(f"time limits ({effect})")
    limits.add_argument(
        "--max-duration",
        metavar="SECONDS",
        type=_seconds,
        help=f"stop watching the call this long after a worker first took it (default: {default})",
    )
    limits.add_argument(
        "--idle-timeout",
        metavar="SECONDS",
        type=_seconds,
        help=f"stop watching the call when the provider sent nothing for this long (default: {default})",
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= _MAX_PORT:
        raise argparse.ArgumentTypeError(f"expected a port number, 0 to {_MAX_PORT}, not {text!r}")
    return port


def _host(text: str) -> str:
    """An empty host would mean every interface, unsaid."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a host name or address")
    return text.strip()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def _serving(options: argparse.Namespace) -> Optional[Serving]:
    """Where each process serves its metrics and probes; None without ``--metrics-port``."""
    port = options.metrics_port
    if port is None:
        for name in ("metrics_host", "stale_after"):
            if getattr(options, name) is not None:
                raise livecall.ConfigurationError(f"--{name.replace('_', '-')} needs --metrics-port")
        return None
    if importlib.util.find_spec("prometheus_client") is None:
        raise livecall.ConfigurationError(
            "--metrics-port needs prometheus_client: pip install 'livecall-redis[metrics]'"
        )
    if port and port + options.processes - 1 > _MAX_PORT:
        raise livecall.ConfigurationError(
            f"--metrics-port {port} leaves no port for each of the {options.processes} processes"
        )
    return Serving(
        port,
        options.metrics_host or DEFAULT_METRICS_HOST,
        options.stale_after or livecall.observability.DEFAULT_STALE_AFTER,
    )


def _allow_host_gone(value: str) -> str:
    """``--allow-host HOST`` allowed one host for every provider's credentials, on any scheme and port."""
    raise argparse.ArgumentTypeError(
        "is gone: it gave one host every provider's credentials, on any scheme and port; "
        "use --allow-url PROVIDER=URL (such as phonic=wss://phonic.example.com)"
    )


def worker_command(config: livecall.Config) -> int:
    """``livecall worker``: runs until interrupted; then its calls are drained (``--drain``)."""
    options = config.options
    if options.processes < 1:
        raise livecall.ConfigurationError("--processes must be 1 or more")
    serving = _serving(options)
    settings = WorkerSettings(
        redis_url=_redis_url(options),
        requests=options.requests,
        group=options.group,
        events=options.events,
        dead_letter=options.dead_letter,
        shards=options.shards,
        cluster=options.cluster,
        events_maxlen=options.events_maxlen,
        hiya_url=options.hiya_url,
        phonic_url=options.phonic_url,
        allowed_urls=options.allow_url,
        hiya_token_command=options.hiya_token_command,
        keep_words=options.keep_words,
        max_duration=options.max_duration,
        idle_timeout=options.idle_timeout,
        drain=options.drain,
        drain_timeout=options.drain_timeout,
        **{name: getattr(options, name) for name, _, _ in _TUNING},
    )
    with _reaching_redis("start the worker", settings.redis_url):
        check_mode(settings.redis_url, settings.cluster, redis_place(settings.redis_url))
        ping = settings.redis_client()
        try:
            ping.ping()
        finally:
            ping.close()
    if options.processes == 1:
        stop, hurry = threading.Event(), threading.Event()
        # A signal sets stop from another thread: the worker drains; a second one sets hurry.
        with config.stopping(stop.set), second_signal(hurry.set):
            run_worker(settings, config.plugin_manager, serving, stop, hurry)
        return livecall.ExitStatus.OK
    failed = run_processes(settings, options.processes, serving, config.stopping, second_signal)
    return livecall.ExitStatus.FAILURE if failed else livecall.ExitStatus.OK


def _add_enqueue(subparsers: Any) -> None:
    command = subparsers.add_parser(
        "enqueue",
        help="ask the workers to watch a call",
        description="Put a watch request on the requests stream and print its id.",
    )
    providers = command.add_subparsers(dest="provider", metavar="PROVIDER", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _redis_option(common)
    common.add_argument("--requests", metavar="KEY", default=DEFAULT_REQUESTS, help="(default: %(default)s)")
    _shard_options(common)
    connection = common.add_argument_group("connection")
    connection.add_argument(
        "--url", metavar="BASE", help="the provider's WebSocket base URL (default: the worker's)"
    )
    connection.add_argument(
        "--max-retries", metavar="N", type=int, help="reconnect attempts before giving up"
    )
    connection.add_argument(
        "--ping-interval", metavar="S", type=float, help="ping after this many seconds of silence"
    )
    connection.add_argument(
        "--ping-timeout", metavar="S", type=float, help="seconds a ping may go unanswered"
    )
    _time_limit_options(
        common, "the call's own, over the worker's; one reached ends the call for good", "the worker's"
    )
    for provider in livecall.providers():
        parser = providers.add_parser(provider.name, parents=[common], help=provider.description)
        described = _watch_help(provider)
        for field in provider.fields:
            if not field.credential:  # the workers' own credentials stay with them
                option = f"--{field.name.replace('_', '-')}"
                parser.add_argument(
                    option,
                    metavar=field.name.split("_")[-1].upper(),
                    type=livecall.Credential if field.secret else str,
                    help=described.get(option) or (f"(default: ${field.env})" if field.env else None),
                )
        parser.set_defaults(func=enqueue_command)


def _watch_help(provider: "livecall.Provider[Any]") -> dict[str, str]:
    """What ``livecall watch PROVIDER --help`` says of each option: a request's fields are those options."""
    scratch = argparse.ArgumentParser(add_help=False)
    provider.add_arguments(scratch)
    return {
        option: action.help for action in scratch._actions if action.help for option in action.option_strings
    }


def enqueue_command(config: livecall.Config) -> int:
    """``livecall enqueue``: prints the request's id."""
    options = config.options
    provider = livecall.get_provider(options.provider)
    request = WatchRequest(
        provider.name,
        url=options.url,
        max_retries=options.max_retries,
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout,
        max_duration=options.max_duration,
        idle_timeout=options.idle_timeout,
        **{field.name: _field(options, field) for field in provider.fields if not field.credential},
    )
    url = _redis_url(options)
    with _reaching_redis("enqueue", url):
        check_mode(url, options.cluster, redis_place(url))
        client = connect(url, options.cluster, decode_responses=True)
        try:
            request_id = enqueue(client, request, options.requests, shards=options.shards)
        finally:
            client.close()
    config.stdout.write(f"{request_id}\n")
    return livecall.ExitStatus.OK


def _field(options: argparse.Namespace, field: Any) -> Any:
    """The option given for ``field``, else its environment variable (a secret stays out of ``ps``)."""
    value = getattr(options, field.name)
    if value is not None or field.env is None:
        return value
    return livecall.Credential(env=field.env) if field.secret else os.environ.get(field.env)


def _add_status(subparsers: Any) -> None:
    command = subparsers.add_parser(
        "status",
        help="show the requests waiting, the calls each worker holds, the dead letters and the events",
        description="Show how many requests wait for a worker, which workers hold how many calls (and "
        "how long since each renewed its oldest lease), the dead letters with why they died, and the "
        "events stream's length and newest entry.  Read from Redis alone, with or without workers; "
        "with --shards, every shard together and each apart.",
    )
    _redis_option(command)
    _stream_options(command, "requests", "group", "events", "dead_letter")
    _shard_options(command)
    command.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people, or one JSON object for programs (default: %(default)s)",
    )
    command.add_argument(
        "--dead-letters",
        metavar="N",
        type=_count,
        default=10,
        help="show the newest N dead letters (default: %(default)s)",
    )
    command.set_defaults(func=status_command)


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number, 0 or more, not {text!r}")
    return int(text)


def _layout(options: argparse.Namespace, url: str) -> WorkerSettings:
    """The streams a command works on (those of its ``_stream_options``), laid out as the workers'
    by ``--shards`` and ``--cluster``; a name with a brace is refused once names carry hash tags."""
    names = {name: getattr(options, name) for name in _STREAMS if hasattr(options, name)}
    return WorkerSettings(redis_url=url, shards=options.shards, cluster=options.cluster, **names)


@contextlib.contextmanager
def _operating(options: argparse.Namespace, what: str) -> Iterator[tuple[Any, WorkerSettings]]:
    """A client of the Redis ``--redis`` names, checked against ``--cluster``, and the streams'
    layout, for an operator's command that is to ``what``; closed on the way out."""
    url = _redis_url(options)
    layout = _layout(options, url)
    with _reaching_redis(what, url):
        check_mode(url, options.cluster, redis_place(url))
        client = connect(url, options.cluster, decode_responses=True, encoding_errors="replace")
        try:
            yield client, layout
        finally:
            client.close()


def status_command(config: livecall.Config) -> int:
    """``livecall status``: prints the workers' status."""
    options = config.options
    with _operating(options, "read the status") as (client, layout):
        status = read_status(client, layout, options.group, options.dead_letters)
    config.stdout.write(status.json() + "\n" if options.format == "json" else status.text())
    return livecall.ExitStatus.OK


def _add_requeue(subparsers: Any) -> None:
    command = subparsers.add_parser(
        "requeue",
        help="put dead letters back on the requests stream",
        description="Put each dead letter named (by its id on the dead-letter stream, as livecall "
        "status shows it), or every one, back on the requests stream as a new request, and print "
        "the new requests' ids.  With --shards, ids are SHARD/ID and each letter goes back on its "
        "own shard's requests stream.  A dead letter whose request needs a secret it did not keep "
        "(a Hiya conversation token) stays where it is: enqueue that call again.",
    )
    _redis_option(command)
    _stream_options(command, "requests", "dead_letter")
    _shard_options(command)
    which = command.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "ids", metavar="ID", nargs="*", default=[], help="a dead letter's id (SHARD/ID with --shards)"
    )
    which.add_argument("--all", action="store_true", help="every dead letter, of every shard")
    command.set_defaults(func=requeue_command)


def requeue_command(config: livecall.Config) -> int:
    """``livecall requeue``: prints each new request's id; exit status 1 if a letter stayed."""
    options = config.options
    with _operating(options, "requeue") as (client, layout):
        ids = list(all_dead_letters(client, layout)) if options.all else options.ids
        for outcome in requeue(client, layout, ids):
            if outcome.request_id is not None:
                config.stdout.write(f"{outcome.request_id}\n")
            else:
                config.fail(
                    livecall.ExitStatus.FAILURE,
                    f"dead letter {outcome.dead_letter} not requeued: {outcome.problem}",
                )
    return livecall.ExitStatus.OK
