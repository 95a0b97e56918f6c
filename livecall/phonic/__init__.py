"""Phonic's Live Conversation stream: ``/v1/conversations/{id}/live/ws``, server to client.

Every ``conversation-updated`` carries the whole conversation, so the client
derives transcript lines and tool calls by comparing snapshots, and a reconnect loses
nothing: the first snapshot after it brings back whatever was missed, and
lines already emitted are not emitted again.
"""

import argparse
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union
from urllib.parse import quote, urlencode

from .._codec import PhonicDecoder
from .._safety.secrets import Credential, HiddenLines
from .._watch.client import LiveClient
from .._watch.fields import Field
from .._watch.provider import Provider, Request, register_provider
from .._wire.checks import header_text
from ..call import Call
from ..errors import ConfigurationError
from ..events import ConversationEnded, ConversationUpdated, Event
from ._snapshots import SnapshotTracker, update_call

__all__ = ["PHONIC", "PhonicClient"]

#: The official SDK's default; older docs show api.phonic.co, which serves the same API.
DEFAULT_URL = "wss://api.phonic.ai"
API_KEY_ENV = "PHONIC_API_KEY"


#: Command line only: secrets in the environment stay out of ``ps``.
SESSION_TOKEN_ENV = "PHONIC_SESSION_TOKEN"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conversation-id",
        metavar="ID",
        required=True,
        help="the conversation to watch (conv_...), from Phonic's API or dashboard",
    )
    credentials = parser.add_mutually_exclusive_group()
    credentials.add_argument("--api-key", metavar="KEY", type=Credential, help=f"default: ${API_KEY_ENV}")
    credentials.add_argument(
        "--session-token",
        metavar="TOKEN",
        type=Credential,
        help=f"a short-lived session token (default: ${SESSION_TOKEN_ENV}, if no API key is set)",
    )
    credentials.add_argument(
        "--api-key-command",
        metavar="CMD",
        help="a command (run without a shell) printing the API key, run again on every connection attempt",
    )


def _from_arguments(options: argparse.Namespace, common: dict[str, Any]) -> "PhonicClient":
    credentials: dict[str, Any]
    if options.api_key:
        credentials = {"api_key": options.api_key.get()}
    elif options.api_key_command is not None:
        credentials = {
            "api_key": PHONIC.credential_source(
                "api_key", command=options.api_key_command, plugin_manager=common.get("plugin_manager")
            )
        }
    elif options.session_token or not Credential(env=API_KEY_ENV).get():
        credentials = {"session_token": (options.session_token or Credential(env=SESSION_TOKEN_ENV)).get()}
        if not credentials["session_token"]:
            raise ConfigurationError(
                f"Phonic needs --api-key, --session-token, ${API_KEY_ENV} or ${SESSION_TOKEN_ENV}"
            )
    else:
        credentials = {}  # $PHONIC_API_KEY, read on every attempt
    return PhonicClient(options.conversation_id, **credentials, **common)


class _PhonicSession:
    """Phonic's part of one client: its credentials, and the snapshots compared into lines."""

    def __init__(
        self,
        conversation_id: Optional[str],
        api_key: Union[str, Callable[[], str], None],
        session_token: Optional[str],
    ):
        if not conversation_id:
            raise ConfigurationError("Phonic needs the conversation_id to watch")
        header_text("conversation_id", conversation_id)
        if api_key and session_token:
            raise ConfigurationError("pass api_key or session_token, not both: Phonic rejects the pair")
        self._session_token = Credential(session_token) if session_token else None
        if isinstance(api_key, str) and api_key:
            header_text("api_key", api_key)  # now, not at the first connection attempt
        self._api_key = Credential(api_key, env=API_KEY_ENV)
        if self._session_token is None and not self._api_key:
            raise ConfigurationError(f"Phonic needs api_key=, session_token= or {API_KEY_ENV}")
        self._tracker = SnapshotTracker()
        self._path = f"/v1/conversations/{quote(conversation_id, safe='')}/live/ws"

    def request(self, base_url: str) -> Request:
        safe_url = f"{base_url}{self._path}"
        if self._session_token is not None:
            query = urlencode(
                {"session_token": header_text("the session token", self._session_token.get() or "")}
            )
            return Request(url=f"{safe_url}?{query}", headers=HiddenLines(()), safe_url=safe_url)
        api_key = self._api_key.get()
        if not api_key:
            raise ConfigurationError(
                f"the Phonic API key source returned nothing (or {API_KEY_ENV} is empty)"
            )
        return Request(
            url=safe_url,
            headers=HiddenLines([f"Authorization: Bearer {header_text('the API key', api_key)}"]),
            safe_url=safe_url,
        )

    def handle(self, call: Call, event: Event) -> Sequence[Event]:
        if type(event) is not ConversationUpdated:
            return []
        update_call(call, event.conversation)
        return self._tracker.new_events(event.conversation, event.received_at)

    def connection_lost(self, error: BaseException) -> None:
        """Nothing waits on Phonic's connection: the next snapshot brings back what was missed."""


def _new_client(**arguments: Any) -> "PhonicClient":
    return PhonicClient(**arguments)


#: Phonic as livecall sees it; see :class:`~livecall.Provider`.
PHONIC = register_provider(
    Provider(
        name="phonic",
        description="a Phonic conversation",
        default_url=DEFAULT_URL,
        fields=(
            Field("conversation_id", required=True),
            Field("api_key", secret=True, credential=True, renewable=True, env=API_KEY_ENV),
            Field("session_token", secret=True, credential=True, env=SESSION_TOKEN_ENV),
        ),
        call_ids_shared=True,
        new_client=_new_client,
        new_decoder=PhonicDecoder,
        final_events=(ConversationEnded,),
        new_session=_PhonicSession,
        add_arguments=_add_arguments,
        from_arguments=_from_arguments,
        replays_missed=True,
    )
)


class PhonicClient(LiveClient):
    """Watch a Phonic conversation.

    Authenticate with ``api_key`` (a string, or a callable returning one, read
    again on every connection attempt; falls back on ``PHONIC_API_KEY``), sent
    as a bearer header, or with a short-lived ``session_token``, sent in the query with no
    Authorization header, as Phonic requires.  Neither is ever printed.
    """

    provider = PHONIC

    def __init__(
        self,
        conversation_id: Optional[str] = None,
        *,
        api_key: Union[str, Callable[[], str], None] = None,
        session_token: Optional[str] = None,
        url: Optional[str] = None,
        **options: Any,
    ):
        self._session = PHONIC.new_session(conversation_id, api_key, session_token)
        assert conversation_id  # the session refuses a missing one
        super().__init__(url=url or DEFAULT_URL, call_id=conversation_id, **options)
