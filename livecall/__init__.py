"""Watch live phone calls and AI voice conversations as they happen.

``HiyaClient`` and ``PhonicClient`` connect to a provider's live stream, turn
each message into an event (``livecall.events``) and hand it to plugins and
callbacks.  Plugins implement the hooks in ``livecall.hookspecs``.  Each
provider is a :class:`Provider` (``get_provider()``, ``providers()``), which
also builds a client from a request's fields.
"""

from ._codec import to_json, to_record, without_words
from ._exit_status import ExitStatus
from ._hub.connect import ProxySettings
from ._hub.loop import configure_hub, hub_turn_age
from ._observe.watch_counts import ClientStats
from ._safety.files import owner_only
from ._safety.printable import PrintableFormatter, printable
from ._safety.secrets import MIN_SECRET_LENGTH, Credential, RedactingFilter, redact
from ._version import __version__ as __version__
from ._watch.backoff import Backoff
from ._watch.client import LiveClient
from ._watch.credential_source import CredentialSource
from ._watch.provider import Provider, get_provider, providers
from ._watch.recording import RecordingWriter
from ._watch.waiting import wait_all, wait_any
from .call import Call, EndReason
from .config import Config
from .errors import (
    AckTimeoutError,
    AuthenticationError,
    ConfigurationError,
    ConnectionLostError,
    LivecallError,
    PluginError,
    ProtocolError,
    RetriesExhaustedError,
)
from .events import (
    Ack,
    CallEnded,
    CallStarted,
    Conversation,
    ConversationEnded,
    ConversationItem,
    ConversationUpdated,
    DecodeError,
    Event,
    Gap,
    Reconnecting,
    Role,
    ScreeningEnded,
    ServerError,
    ToolCall,
    Transcript,
    UnknownMessage,
)
from .hiya import HiyaClient
from .hookspecs import hookimpl
from .phonic import PhonicClient

__all__ = [
    "Ack",
    "AckTimeoutError",
    "AuthenticationError",
    "Backoff",
    "Call",
    "CallEnded",
    "CallStarted",
    "ClientStats",
    "Config",
    "ConfigurationError",
    "ConnectionLostError",
    "Conversation",
    "ConversationEnded",
    "ConversationItem",
    "ConversationUpdated",
    "Credential",
    "CredentialSource",
    "DecodeError",
    "EndReason",
    "Event",
    "ExitStatus",
    "Gap",
    "HiyaClient",
    "LiveClient",
    "LivecallError",
    "MIN_SECRET_LENGTH",
    "PhonicClient",
    "PluginError",
    "PrintableFormatter",
    "ProtocolError",
    "Provider",
    "ProxySettings",
    "Reconnecting",
    "RecordingWriter",
    "RedactingFilter",
    "RetriesExhaustedError",
    "Role",
    "ScreeningEnded",
    "ServerError",
    "ToolCall",
    "Transcript",
    "UnknownMessage",
    "configure_hub",
    "get_provider",
    "hookimpl",
    "hub_turn_age",
    "owner_only",
    "printable",
    "providers",
    "redact",
    "to_json",
    "to_record",
    "wait_all",
    "wait_any",
    "without_words",
]
