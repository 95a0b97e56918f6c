"""Hiya's Live Calls stream: ``/ws/v1/liveCalls``, bidirectional.

The client may ask to join or end the call; the server acknowledges each
request with an ``ack`` carrying the request's ``id``.  Hiya does not replay
what was said while a client was disconnected, so a reconnect is reported
(``livecall_reconnect``) and the gap is the caller's to judge.
"""

import argparse
import functools
import json
import os
import threading
import uuid
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union
from urllib.parse import urlencode

from ._codec import Decoder, HiyaMessage
from ._safety.secrets import Credential, HiddenLines
from ._watch.client import LiveClient
from ._watch.credential_source import CredentialSource
from ._watch.fields import Field
from ._watch.provider import Provider, Request, register_provider
from ._wire.checks import header_text
from .call import Call, new_call_id
from .errors import AckTimeoutError, ConfigurationError, ConnectionLostError, LivecallError
from .events import Ack, CallEnded, CallStarted, Event

__all__ = ["HIYA", "HiyaClient"]

#: The public docs do not name the WebSocket host; this is the REST API's host, a guess.
DEFAULT_URL = "wss://voiceplatform.api.hiya.com"
PATH = "/ws/v1/liveCalls"
TOKEN_ENV = "HIYA_TOKEN"
#: Command line only: secrets in the environment stay out of ``ps``.
CONVERSATION_TOKEN_ENV = "HIYA_CONVERSATION_TOKEN"
#: Not a secret, but the docs' programs read it from there too.
USER_ID_ENV = "HIYA_USER_ID"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    token = parser.add_mutually_exclusive_group()
    token.add_argument("--token", type=Credential, help=f"bearer token (default: ${TOKEN_ENV})")
    token.add_argument(
        "--token-command",
        metavar="CMD",
        help="a command (run without a shell) printing a fresh bearer token, "
        "run again on every connection attempt",
    )
    parser.add_argument(
        "--conversation-token",
        metavar="CT",
        type=Credential,
        help=f"the call's liveConversationToken (default: ${CONVERSATION_TOKEN_ENV})",
    )
    parser.add_argument(
        "--user-id",
        metavar="ID",
        help=f"the logged-in user's id, sent as x-hiya-account-user-id (default: ${USER_ID_ENV})",
    )
    parser.add_argument("--product-version", metavar="V", help="sent as x-hiya-product-version")
    parser.add_argument(
        "--join",
        action="store_true",
        help="join the call (client:joinCall) once it has started, and report the ack",
    )


def _from_arguments(options: argparse.Namespace, common: dict[str, Any]) -> "HiyaClient":
    token = _token(options, common.get("plugin_manager"))
    conversation_token = (options.conversation_token or Credential(env=CONVERSATION_TOKEN_ENV)).get()
    if not conversation_token:
        raise ConfigurationError(f"Hiya needs --conversation-token or ${CONVERSATION_TOKEN_ENV}")
    user_id = options.user_id or os.environ.get(USER_ID_ENV)
    if not user_id:
        raise ConfigurationError(f"Hiya needs the user's id: --user-id or ${USER_ID_ENV}")
    return HiyaClient(
        token,
        conversation_token,
        user_id,
        product_version=options.product_version,
        **common,
    )


def _token(options: argparse.Namespace, plugin_manager: Any) -> Union[str, CredentialSource, None]:
    """``--token``, else a source asked on every attempt (plugins, ``--token-command``, the environment).

    None leaves the client to read ``$HIYA_TOKEN`` on every attempt.
    """
    if options.token:
        return options.token.get()
    plugins_give_it = plugin_manager is not None and plugin_manager.hook.livecall_credential.get_hookimpls()
    if options.token_command is not None or plugins_give_it:
        return HIYA.credential_source("token", command=options.token_command, plugin_manager=plugin_manager)
    if not Credential(env=TOKEN_ENV).get():
        raise ConfigurationError(f"Hiya needs a bearer token: --token, --token-command or ${TOKEN_ENV}")
    return None


class _PendingAck:
    __slots__ = ("done", "ack", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ack: Optional[Ack] = None
        self.error: Optional[BaseException] = None


class _HiyaSession:
    """Hiya's part of one client: its credentials and headers, and the acks its requests wait for.

    ``acks`` is the client's: ``join_call()`` and ``end_call()`` put a
    pending ack in it, and the watch resolves it, or fails it once the
    connection is lost.
    """

    def __init__(
        self,
        token: Union[str, Callable[[], str], None],
        conversation_token: Optional[str],
        user_id: Optional[str],
        product_version: Optional[str],
        acks: dict[str, _PendingAck],
    ):
        self._token = Credential(token, env=TOKEN_ENV)
        if not self._token:
            raise ConfigurationError(f"Hiya needs a bearer token: pass token= or set {TOKEN_ENV}")
        if not conversation_token:
            raise ConfigurationError("Hiya needs the call's conversation_token (liveConversationToken)")
        if not user_id:
            raise ConfigurationError("Hiya needs user_id (sent as x-hiya-account-user-id)")
        if isinstance(token, str):
            header_text("token", token)  # now, not at the first connection attempt
        self._conversation_token = Credential(conversation_token)
        self._user_id = header_text("user_id", user_id)
        self._product_version = product_version and header_text("product_version", product_version)
        self._acks = acks

    def request(self, base_url: str) -> Request:
        token = self._token.get()
        if not token:
            raise ConfigurationError(f"the Hiya token source returned nothing (or {TOKEN_ENV} is empty)")
        optional = [f"x-hiya-product-version: {self._product_version}"] if self._product_version else []
        query = urlencode(
            {"conversationToken": header_text("the conversation token", self._conversation_token.get() or "")}
        )
        return Request(
            url=f"{base_url}{PATH}?{query}",
            headers=HiddenLines(
                [
                    f"Authorization: Bearer {header_text('the token', token)}",
                    f"x-hiya-account-user-id: {self._user_id}",
                    *optional,
                ]
            ),
            safe_url=f"{base_url}{PATH}",
        )

    def handle(self, call: Call, event: Event) -> Sequence[Event]:
        if type(event) is Ack:
            pending = self._acks.pop(event.ack_id, None)
            if pending is not None:
                pending.ack = event
                pending.done.set()
        elif type(event) is CallStarted:
            call.phone = event.phone
        return []

    def connection_lost(self, error: BaseException) -> None:
        while self._acks:
            _, pending = self._acks.popitem()
            pending.error = error
            pending.done.set()


def _new_client(**arguments: Any) -> "HiyaClient":
    return HiyaClient(**arguments)


#: Hiya as livecall sees it; see :class:`~livecall.Provider`.
HIYA = register_provider(
    Provider(
        name="hiya",
        description="a Hiya live call",
        default_url=DEFAULT_URL,
        fields=(
            Field("conversation_token", required=True, secret=True, env=CONVERSATION_TOKEN_ENV),
            Field("user_id", required=True, env=USER_ID_ENV),
            Field("product_version"),
            Field("token", secret=True, credential=True, renewable=True, env=TOKEN_ENV),
        ),
        call_ids_shared=False,
        new_client=_new_client,
        new_decoder=functools.partial(Decoder, HiyaMessage),
        final_events=(CallEnded,),
        new_session=_HiyaSession,
        add_arguments=_add_arguments,
        from_arguments=_from_arguments,
        replays_missed=False,
    )
)


class HiyaClient(LiveClient):
    """Watch a Hiya live call.

    ``token`` is the bearer JWT (a string, or a callable returning a fresh one,
    read again on every connection attempt, such as a ``CredentialSource``;
    falls back on ``HIYA_TOKEN``),
    ``conversation_token`` the call log entry's ``liveConversationToken``.
    Neither is ever printed.  Other keyword arguments are those of
    :class:`LiveClient` (timeouts, retries, TLS, proxy, plugins).
    """

    provider = HIYA

    def __init__(
        self,
        token: Union[str, Callable[[], str], None] = None,
        conversation_token: Optional[str] = None,
        user_id: Optional[str] = None,
        *,
        url: Optional[str] = None,
        product_version: Optional[str] = None,
        **options: Any,
    ):
        self._acks: dict[str, _PendingAck] = {}
        self._session = HIYA.new_session(token, conversation_token, user_id, product_version, self._acks)
        super().__init__(url=url or DEFAULT_URL, call_id=new_call_id(), **options)

    def join_call(self, timeout: float = 10.0) -> Ack:
        """Ask Hiya to transfer the call to the user; returns the server's ``Ack``."""
        return self._request_ack("client:joinCall", timeout)

    def end_call(self, timeout: float = 10.0) -> Ack:
        """Ask Hiya to end the call; returns the server's ``Ack``."""
        return self._request_ack("client:endCall", timeout)

    def _request_ack(self, message_type: str, timeout: float) -> Ack:
        if self._in_own_hook():
            raise LivecallError(
                f"{message_type} waits for its ack, which the dispatcher thread delivers: "
                "call it from outside hooks and callbacks"
            )
        message_id = uuid.uuid4().hex
        pending = self._acks[message_id] = _PendingAck()

        def failed(error: BaseException) -> None:
            if self._acks.pop(message_id, None) is not None:
                pending.error = ConnectionLostError(f"cannot send {message_type}: {type(error).__name__}")
                pending.done.set()

        try:
            self._send(json.dumps({"type": message_type, "id": message_id}), failed)
        except ConnectionLostError:
            self._acks.pop(message_id, None)
            raise ConnectionLostError(f"cannot send {message_type}: not connected") from None
        if not pending.done.wait(timeout):
            self._acks.pop(message_id, None)
            raise AckTimeoutError(f"no ack for {message_type} within {timeout:g} s")
        if pending.error is not None:
            raise pending.error
        assert pending.ack is not None
        return pending.ack
