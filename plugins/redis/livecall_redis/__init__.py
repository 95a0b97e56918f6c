"""Many workers share the calls to watch, over Redis Streams, with crash takeover.

``livecall enqueue hiya|phonic ...`` (or :func:`enqueue`) puts a watch
request on a stream; ``livecall worker --redis URL`` processes take requests
in a consumer group, watch the calls, renew a lease on each, take over the
calls of a worker whose lease lapsed, and write every event, fenced and keyed
so that each is written once, to an events stream.
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

from ._keys import EventKeys
from ._processes import DEFAULT_METRICS_HOST, Serving, run_processes, run_worker
from ._requests import DEFAULT_REQUESTS, WatchRequest, enqueue
from ._scripts import Scripts
from ._settings import DEFAULT_DEAD, DEFAULT_EVENTS, DEFAULT_GROUP, WorkerSettings, redis_place
from ._stats import METRICS, Stats
from ._worker import Worker, consumer_name
from ._writer import EventWriter, Lease

__all__ = [
    "DEFAULT_DEAD",
    "DEFAULT_EVENTS",
    "DEFAULT_GROUP",
    "DEFAULT_REQUESTS",
    "METRICS",
    "REDIS_URL_ENV",
    "EventKeys",
    "EventWriter",
    "Lease",
    "Scripts",
    "Stats",
    "WatchRequest",
    "Worker",
    "WorkerSettings",
    "consumer_name",
    "enqueue",
]

#: Where ``--redis`` is read from when not given (it may hold a password).
REDIS_URL_ENV = "LIVECALL_REDIS_URL"
#: The highest TCP port.
_MAX_PORT = 65535
#: The command's defaults are the settings' own.
_DEFAULTS = attrs.fields(WorkerSettings)
#: ``livecall worker`` options that set the setting of the same name: (name, metavar, help).
_TUNING = (
    ("calls", "N", "calls per process"),
    ("lease", "S", "seconds a call stays held without renewal"),
    ("renew", "S", "seconds between renewals"),
    ("max_deliveries", "N", "deliveries of one request before it goes to the dead-letter stream"),
    ("max_request_bytes", "N", "a request holding more bytes goes to the dead-letter stream unread"),
    ("hub_stall", "S", "seconds the hub may go without a turn before leases are left to lapse"),
)


@livecall.hookimpl
def livecall_register_commands(subparsers: Any) -> None:
    _add_worker(subparsers)
    _add_enqueue(subparsers)


def _redis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        type=livecall.Credential,
        help=f"redis:// or rediss:// URL (default: ${REDIS_URL_ENV})",
    )


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
    except redis.RedisError as error:
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
    streams.add_argument(
        "--requests", metavar="KEY", default=_DEFAULTS.requests.default, help="(default: %(default)s)"
    )
    streams.add_argument(
        "--group", metavar="NAME", default=_DEFAULTS.group.default, help="(default: %(default)s)"
    )
    streams.add_argument(
        "--events", metavar="KEY", default=_DEFAULTS.events.default, help="(default: %(default)s)"
    )
    streams.add_argument(
        "--dead-letter", metavar="KEY", default=_DEFAULTS.dead_letter.default, help="(default: %(default)s)"
    )
    streams.add_argument(
        "--events-maxlen",
        metavar="N",
        type=int,
        default=_DEFAULTS.events_maxlen.default,
        help="trim the events stream to about N entries (default: %(default)s)",
    )
    worker.set_defaults(func=worker_command)


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
    """``livecall worker``: runs until interrupted; then every call is given back."""
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
        events_maxlen=options.events_maxlen,
        hiya_url=options.hiya_url,
        phonic_url=options.phonic_url,
        allowed_urls=options.allow_url,
        hiya_token_command=options.hiya_token_command,
        keep_words=options.keep_words,
        **{name: getattr(options, name) for name, _, _ in _TUNING},
    )
    with _reaching_redis("start the worker", settings.redis_url):
        ping = settings.redis_client()
        try:
            ping.ping()
        finally:
            ping.close()
    if options.processes == 1:
        stop = threading.Event()
        with config.stopping(stop.set):  # a signal sets it from another thread: the calls go back
            run_worker(settings, config.plugin_manager, serving, stop)
        return livecall.ExitStatus.OK
    failed = run_processes(settings, options.processes, serving, config.stopping)
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
    import redis

    options = config.options
    provider = livecall.get_provider(options.provider)
    request = WatchRequest(
        provider.name,
        url=options.url,
        max_retries=options.max_retries,
        ping_interval=options.ping_interval,
        ping_timeout=options.ping_timeout,
        **{field.name: _field(options, field) for field in provider.fields if not field.credential},
    )
    url = _redis_url(options)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        with _reaching_redis("enqueue", url):
            request_id = enqueue(client, request, options.requests)
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
