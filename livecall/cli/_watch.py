"""``livecall watch hiya|phonic``: one call, from the handshake to the exit status."""

import argparse
import inspect
import logging
import os
import threading
import time
from typing import Any, Callable, Optional

from .. import hiya as hiya_provider
from .. import phonic as phonic_provider
from .._checks import base_url
from .._client import LiveClient
from .._exit_status import ExitStatus
from .._secrets import Credential
from ..config import Config
from ..errors import ConfigurationError, ConnectionLostError, LivecallError
from ..events import CallStarted, Event
from ..hiya import TOKEN_ENV, HiyaClient
from ..phonic import API_KEY_ENV, PhonicClient
from ._guard import WatchGuard
from ._lifecycle import configured
from ._numbers import count, positive_seconds

__all__ = ["add_parser", "client_options", "watch", "watch_and_join"]

log = logging.getLogger("livecall.cli")

#: Command line only: secrets in the environment stay out of ``ps``.
CONVERSATION_TOKEN_ENV = "HIYA_CONVERSATION_TOKEN"
SESSION_TOKEN_ENV = "PHONIC_SESSION_TOKEN"
#: Not a secret, but the docs' programs read it from there too.
USER_ID_ENV = "HIYA_USER_ID"
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
    hiya = providers.add_parser(
        "hiya",
        parents=[_connection_options(hiya_provider.DEFAULT_URL), plugin_options],
        help="a Hiya live call",
        description="Watch a Hiya live call.",
    )
    hiya.add_argument("--token", type=Credential, help=f"bearer token (default: ${TOKEN_ENV})")
    hiya.add_argument(
        "--conversation-token",
        metavar="CT",
        type=Credential,
        help=f"the call's liveConversationToken (default: ${CONVERSATION_TOKEN_ENV})",
    )
    hiya.add_argument(
        "--user-id",
        metavar="ID",
        help=f"the logged-in user's id, sent as x-hiya-account-user-id (default: ${USER_ID_ENV})",
    )
    hiya.add_argument("--product-version", metavar="V", help="sent as x-hiya-product-version")
    hiya.add_argument(
        "--join",
        action="store_true",
        help="join the call (client:joinCall) once it has started, and report the ack",
    )
    phonic = providers.add_parser(
        "phonic",
        parents=[_connection_options(phonic_provider.DEFAULT_URL), plugin_options],
        help="a Phonic conversation",
        description="Watch a Phonic conversation.",
    )
    phonic.add_argument(
        "--conversation-id",
        metavar="ID",
        required=True,
        help="the conversation to watch (conv_...), from Phonic's API or dashboard",
    )
    credentials = phonic.add_mutually_exclusive_group()
    credentials.add_argument("--api-key", metavar="KEY", type=Credential, help=f"default: ${API_KEY_ENV}")
    credentials.add_argument(
        "--session-token",
        metavar="TOKEN",
        type=Credential,
        help=f"a short-lived session token (default: ${SESSION_TOKEN_ENV}, if no API key is set)",
    )
    for parser in (hiya, phonic):
        parser.set_defaults(func=watch_command)


def watch_command(config: Config) -> Optional[int]:
    options = config.options
    client = _CLIENTS[options.provider](options, config)  # bad input fails before plugins act
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
        if problem is not None and not guard.fired:
            config.fail(ExitStatus.FAILURE, f"could not join the call: {problem}")

    return _run(client, config, join)


def _run(client: LiveClient, config: Config, once_started: Callable[[WatchGuard], None]) -> Optional[int]:
    """``start()``, ``once_started()``, ``wait()`` within the time limits; ``close()`` whatever happens."""
    options = config.options
    guard = WatchGuard(
        client,
        config.stdout,
        max_duration=getattr(options, "max_duration", None),
        idle_timeout=getattr(options, "idle_timeout", None),
    )
    try:
        with guard:
            client.start()
            once_started(guard)
            client.wait()
    finally:
        client.close()
    return ExitStatus.TIME_LIMIT if guard.time_limit is not None else None


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
        type=_url,
        default=default_url,
        help="the provider's WebSocket base URL, ws:// or wss:// (default: %(default)s)",
    )
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
    limits = parser.add_argument_group("time limits (either ends the watch with exit status 6)")
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


def _secret(option: Optional[Credential], env: str) -> Optional[str]:
    """A credential from its option, else from the environment (kept out of ``ps``)."""
    return (option or Credential(env=env)).get()


def _hiya(options: argparse.Namespace, config: Config) -> HiyaClient:
    if not _secret(options.token, TOKEN_ENV):
        raise ConfigurationError(f"Hiya needs a bearer token: --token or ${TOKEN_ENV}")
    conversation_token = _secret(options.conversation_token, CONVERSATION_TOKEN_ENV)
    if not conversation_token:
        raise ConfigurationError(f"Hiya needs --conversation-token or ${CONVERSATION_TOKEN_ENV}")
    user_id = options.user_id or os.environ.get(USER_ID_ENV)
    if not user_id:
        raise ConfigurationError(f"Hiya needs the user's id: --user-id or ${USER_ID_ENV}")
    return HiyaClient(
        options.token.get() if options.token else None,  # None: $HIYA_TOKEN, read on every attempt
        conversation_token,
        user_id,
        product_version=options.product_version,
        **client_options(config, **_connection(options)),
    )


def _phonic(options: argparse.Namespace, config: Config) -> PhonicClient:
    if options.api_key:
        credentials = {"api_key": options.api_key.get()}
    elif options.session_token or not _secret(None, API_KEY_ENV):
        credentials = {"session_token": _secret(options.session_token, SESSION_TOKEN_ENV)}
        if not credentials["session_token"]:
            raise ConfigurationError(
                f"Phonic needs --api-key, --session-token, ${API_KEY_ENV} or ${SESSION_TOKEN_ENV}"
            )
    else:
        credentials = {}  # $PHONIC_API_KEY, read on every attempt
    return PhonicClient(
        options.conversation_id, **credentials, **client_options(config, **_connection(options))
    )


_CLIENTS: dict[str, Callable[[argparse.Namespace, Config], LiveClient]] = {
    "hiya": _hiya,
    "phonic": _phonic,
}


def _url(text: str) -> str:
    """The client's own check, at parse time: an empty ``--url`` is a mistake, not the default."""
    try:
        return base_url(text)
    except ConfigurationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
