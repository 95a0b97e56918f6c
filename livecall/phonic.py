"""Phonic's Live Conversation stream: ``/v1/conversations/{id}/live/ws``, server to client.

Every ``conversation-updated`` carries the whole conversation, so the client
derives transcript lines by comparing snapshots, and a reconnect loses
nothing: the first snapshot after it brings back whatever was missed, and
lines already emitted are not emitted again.
"""

import argparse
from typing import Any, Optional
from urllib.parse import quote, urlencode

from ._client import LiveClient, Request
from ._codec._decoder import PhonicDecoder
from ._handshake import check_header_value
from ._provider import Provider
from ._secrets import Credential
from ._snapshots import TranscriptTracker
from .errors import ConfigurationError
from .events import ConversationEnded, ConversationUpdated, Event

__all__ = ["PHONIC", "PhonicClient"]

#: The official SDK's default; older docs show api.phonic.co, which serves the same API.
DEFAULT_URL = "wss://api.phonic.ai"
API_KEY_ENV = "PHONIC_API_KEY"
#: Command line only: secrets in the environment stay out of ``ps``.
SESSION_TOKEN_ENV = "PHONIC_SESSION_TOKEN"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conversation-id", metavar="ID", required=True)
    credentials = parser.add_mutually_exclusive_group()
    credentials.add_argument("--api-key", metavar="KEY", type=Credential, help=f"default: ${API_KEY_ENV}")
    credentials.add_argument(
        "--session-token",
        metavar="TOKEN",
        type=Credential,
        help=f"a short-lived session token (default: ${SESSION_TOKEN_ENV}, if no API key is set)",
    )


def _from_arguments(options: argparse.Namespace, common: dict[str, Any]) -> "PhonicClient":
    if options.api_key:
        credentials = {"api_key": options.api_key.get()}
    elif options.session_token or not Credential(env=API_KEY_ENV).get():
        credentials = {"session_token": (options.session_token or Credential(env=SESSION_TOKEN_ENV)).get()}
        if not credentials["session_token"]:
            raise ConfigurationError(
                f"Phonic needs --api-key, --session-token, ${API_KEY_ENV} or ${SESSION_TOKEN_ENV}"
            )
    else:
        credentials = {}  # $PHONIC_API_KEY, read on every attempt
    return PhonicClient(options.conversation_id, **credentials, **common)


#: Phonic as livecall sees it; see :class:`~livecall._provider.Provider`.
PHONIC = Provider(
    name="phonic",
    description="a Phonic conversation",
    new_decoder=PhonicDecoder,
    final_events=(ConversationEnded,),
    add_arguments=_add_arguments,
    from_arguments=_from_arguments,
)


class PhonicClient(LiveClient):
    """Watch a Phonic conversation.

    Authenticate with ``api_key`` (or ``PHONIC_API_KEY``), sent as a bearer
    header, or with a short-lived ``session_token``, sent in the query with no
    Authorization header, as Phonic requires.  Neither is ever printed.
    """

    provider = PHONIC

    def __init__(
        self,
        conversation_id: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        session_token: Optional[str] = None,
        url: Optional[str] = None,
        **options: Any,
    ):
        if not conversation_id:
            raise ConfigurationError("Phonic needs the conversation_id to watch")
        if api_key and session_token:
            raise ConfigurationError("pass api_key or session_token, not both: Phonic rejects the pair")
        self._session_token = Credential(session_token) if session_token else None
        self._api_key = Credential(api_key, env=API_KEY_ENV)
        if self._session_token is None and not self._api_key:
            raise ConfigurationError(f"Phonic needs api_key=, session_token= or {API_KEY_ENV}")
        if api_key:
            check_header_value("api_key", api_key)
        self._tracker = TranscriptTracker()
        super().__init__(url=url or DEFAULT_URL, call_id=conversation_id, **options)
        self._path = f"/v1/conversations/{quote(conversation_id, safe='')}/live/ws"

    def _request(self) -> Request:
        safe_url = f"{self.base_url}{self._path}"
        if self._session_token is not None:
            query = urlencode({"session_token": self._session_token.get()})
            return Request(url=f"{safe_url}?{query}", headers=[], safe_url=safe_url)
        api_key = self._api_key.get()
        if not api_key:
            raise ConfigurationError(f"{API_KEY_ENV} is empty")
        check_header_value("api_key", api_key)
        return Request(url=safe_url, headers=[f"Authorization: Bearer {api_key}"], safe_url=safe_url)

    def _handle(self, event: Event) -> list[Event]:
        if type(event) is not ConversationUpdated:
            return []
        conversation = event.conversation
        if self.call.phone is None:
            self.call.phone = conversation.caller_phone
        return [*self._tracker.new_lines(conversation, event.received_at)]
