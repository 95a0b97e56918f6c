"""Every public name and import path that users and plugins rely on keeps working.

The package's folders follow the data path and may move again; what programs
import may not.  The lists below are the public surface as released: a name
may be added, never silently lost.
"""

import importlib

import pytest

import livecall

#: Public modules and the names programs and plugins import from them.
PUBLIC = {
    "livecall.hiya": [
        "HIYA",
        "HiyaClient",
        "CONVERSATION_TOKEN_ENV",
        "DEFAULT_URL",
        "TOKEN_ENV",
        "USER_ID_ENV",
    ],
    "livecall.phonic": ["PHONIC", "PhonicClient", "API_KEY_ENV", "DEFAULT_URL", "SESSION_TOKEN_ENV"],
    "livecall.testing": [
        "ConnectionRecord",
        "Exploding",
        "Recorder",
        "ScenarioInfo",
        "ScenarioOptions",
        "Simulator",
        "configure",
        "scenarios",
        "wait_until",
    ],
    "livecall.testing.pytest_plugin": ["hiya_simulator", "livecall_simulator", "phonic_simulator"],
    "livecall.plugins": [
        "DISABLE_AUTOLOAD_ENV",
        "ENTRY_POINT_GROUP",
        "PLUGINS_ENV",
        "create_plugin_manager",
        "get_plugin_manager",
        "get_plugins",
    ],
    "livecall.config": ["Config"],
    "livecall.hookspecs": [
        "hookimpl",
        "hookspec",
        "livecall_addoption",
        "livecall_call_end",
        "livecall_call_start",
        "livecall_configure",
        "livecall_credential",
        "livecall_error",
        "livecall_event",
        "livecall_reconnect",
        "livecall_register_commands",
        "livecall_transcript",
        "livecall_unconfigure",
    ],
    "livecall.events": [
        "Ack",
        "CallEnded",
        "CallStarted",
        "Conversation",
        "ConversationEnded",
        "ConversationItem",
        "ConversationUpdated",
        "DecodeError",
        "Event",
        "Reconnecting",
        "Role",
        "ScreeningEnded",
        "ServerError",
        "ToolCall",
        "Transcript",
        "UnknownMessage",
    ],
    "livecall.call": ["Call", "EndReason"],
    "livecall.errors": [
        "AckTimeoutError",
        "AuthenticationError",
        "ConfigurationError",
        "ConnectionLostError",
        "LivecallError",
        "PluginError",
        "ProtocolError",
        "RetriesExhaustedError",
    ],
    "livecall.cli": ["main"],
}

#: ``livecall.__all__`` as released: the top-level names.
TOP_LEVEL = [
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
    "HiyaClient",
    "LiveClient",
    "LivecallError",
    "MIN_SECRET_LENGTH",
    "PhonicClient",
    "PluginError",
    "PrintableFormatter",
    "ProtocolError",
    "ProxySettings",
    "Reconnecting",
    "RedactingFilter",
    "RetriesExhaustedError",
    "Role",
    "ScreeningEnded",
    "ServerError",
    "ToolCall",
    "Transcript",
    "UnknownMessage",
    "configure_hub",
    "hookimpl",
    "owner_only",
    "printable",
    "redact",
    "to_json",
    "to_record",
    "wait_all",
    "wait_any",
]


@pytest.mark.parametrize(
    "module, name", [(module, name) for module, names in PUBLIC.items() for name in names]
)
def test_a_public_name_is_where_it_was(module, name):
    assert hasattr(importlib.import_module(module), name)


def test_no_top_level_name_was_lost():
    assert set(TOP_LEVEL) - set(livecall.__all__) == set()
    assert all(hasattr(livecall, name) for name in livecall.__all__)


def test_the_same_object_under_both_paths():
    assert livecall.HiyaClient is importlib.import_module("livecall.hiya").HiyaClient
    assert livecall.PhonicClient is importlib.import_module("livecall.phonic").PhonicClient
    assert livecall.Config is importlib.import_module("livecall.config").Config
    assert livecall.hookimpl is importlib.import_module("livecall.hookspecs").hookimpl
