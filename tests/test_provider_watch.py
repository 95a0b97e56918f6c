"""Each provider's watch on its own: no client, no socket, no thread.

Credentials are registered for redaction process-wide: each here is a value no message holds.
"""

import pytest

import livecall
from livecall import Ack, Call, ConfigurationError, ConnectionLostError
from livecall.hiya import HIYA, _PendingAck
from livecall.phonic import PHONIC


def test_hiya_watch_builds_each_request_with_the_base_url_it_is_given():
    watch = HIYA.new_session("bearer-WATCH-0001", "conversation-WATCH-0002", "user-3", "2.1.3", {})
    request = watch.request("ws://127.0.0.1:9")
    assert request.url == "ws://127.0.0.1:9/ws/v1/liveCalls?conversationToken=conversation-WATCH-0002"
    assert request.safe_url == "ws://127.0.0.1:9/ws/v1/liveCalls"
    assert list(request.headers) == [
        "Authorization: Bearer bearer-WATCH-0001",
        "x-hiya-account-user-id: user-3",
        "x-hiya-product-version: 2.1.3",
    ]


def test_hiya_watch_resolves_the_acked_request_and_fails_the_others_when_the_connection_goes():
    acks = {"a": _PendingAck(), "b": _PendingAck()}
    watch = HIYA.new_session("bearer-WATCH-0001", "conversation-WATCH-0002", "user", None, acks)
    call = Call(provider="hiya", id="c")
    first, ack = acks["a"], Ack(ack_id="a")
    assert list(watch.handle(call, ack)) == []
    assert list(acks) == ["b"] and first.done.is_set() and first.ack is ack
    error = ConnectionLostError("connection lost: test")
    pending = acks["b"]
    watch.connection_lost(error)
    assert acks == {} and pending.done.is_set() and pending.error is error and pending.ack is None


def test_phonic_watch_quotes_the_conversation_id_and_puts_a_session_token_in_the_query():
    watch = PHONIC.new_session("conv/1", None, "session-WATCH-0004")
    request = watch.request("wss://example.test")
    assert (
        request.url == "wss://example.test/v1/conversations/conv%2F1/live/ws?session_token=session-WATCH-0004"
    )
    assert list(request.headers) == []
    assert list(watch.handle(Call(provider="phonic", id="conv/1"), Ack(ack_id="x"))) == []


def test_a_watch_checks_the_arguments_its_client_was_given():
    with pytest.raises(ConfigurationError, match="not both"):
        PHONIC.new_session("conv", "key-WATCH-0005", "session-WATCH-0004")
    with pytest.raises(ConfigurationError, match="user_id"):
        HIYA.new_session("bearer-WATCH-0001", "conversation-WATCH-0002", None, None, {})


def test_the_providers_are_known_by_name_and_an_unknown_name_lists_them():
    assert livecall.providers() == [HIYA, PHONIC]
    assert livecall.get_provider("phonic") is PHONIC
    with pytest.raises(ConfigurationError, match="unknown provider 'skype': livecall knows hiya, phonic"):
        livecall.get_provider("skype")


def test_a_client_is_built_from_a_request_s_fields_read_from_text():
    client = PHONIC.client_from_fields(
        {"provider": "phonic", "conversation_id": "conv_1", "max_retries": "3", "url": "ws://127.0.0.1:9"},
        api_key="key-FIELDS-0001",
        plugins=[],
    )
    assert isinstance(client, livecall.PhonicClient)
    assert (client.call.id, client.max_retries, client.base_url) == ("conv_1", 3, "ws://127.0.0.1:9")


def test_the_program_s_options_win_over_the_request_s_fields():
    client = PHONIC.client_from_fields(
        {"conversation_id": "conv_1", "url": "ws://127.0.0.1:9"},
        url="ws://127.0.0.1:10",
        api_key="key-FIELDS-0001",
        plugins=[],
    )
    assert client.base_url == "ws://127.0.0.1:10"


@pytest.mark.parametrize(
    "provider, fields, message",
    [
        (PHONIC, {"conversation_id": "c", "bogus": 1}, "phonic request takes no bogus: it takes"),
        (HIYA, {"user_id": "u"}, "a hiya request needs conversation_token"),
        (HIYA, {"conversation_token": "ct-FIELDS-0002", "user_id": "u\r\nX: y"}, "user_id must be printable"),
        (PHONIC, {"conversation_id": "c", "max_retries": "many"}, "max_retries must be a whole number"),
        (PHONIC, {"conversation_id": "c", "ping_interval": True}, "ping_interval must be a number"),
        (PHONIC, {"conversation_id": "c", "ping_interval": "nan"}, "ping_interval must be a number"),
        (PHONIC, {"conversation_id": "c", "ping_timeout": float("nan")}, "ping_timeout must be a number"),
        (PHONIC, {"conversation_id": "c", "ping_timeout": "1e999"}, "ping_timeout must be a number"),
        (PHONIC, {"conversation_id": "c", "ping_interval": "-1"}, "ping_interval must be a number"),
        (PHONIC, {"conversation_id": "c", "ping_interval": 10**400}, "ping_interval must be a number"),
        (PHONIC, {"conversation_id": "c", "max_retries": "-1"}, "max_retries must be a whole number, 0"),
        (PHONIC, {"conversation_id": "c", "max_retries": "\u00b2"}, "max_retries must be a whole number"),
        (PHONIC, {"conversation_id": "c", "max_retries": "9" * 5000}, "max_retries must be a whole number"),
        (PHONIC, {"conversation_id": "c", "max_retries": 2.5}, "max_retries must be a whole number"),
        (PHONIC, {"conversation_id": "c", "api_kye": "k"}, r"takes no api_kye \(did you mean api_key\?\)"),
        (PHONIC, {"provider": "hiya", "conversation_id": "c"}, "a request for 'hiya' is not one for phonic"),
    ],
)
def test_a_field_that_cannot_be_read_is_named(provider, fields, message):
    with pytest.raises(ConfigurationError, match=message):
        provider.check_fields(fields)


def test_a_secret_field_becomes_a_credential_and_no_message_shows_it():
    fields = HIYA.check_fields({"conversation_token": "ct-FIELDS-0003", "user_id": "u"})
    assert isinstance(fields["conversation_token"], livecall.Credential)
    assert "ct-FIELDS-0003" not in repr(fields)
    with pytest.raises(ConfigurationError) as raised:
        HIYA.check_fields({"conversation_token": "ct-FIELDS-0003\n", "user_id": "u"})
    assert "ct-FIELDS-0003" not in str(raised.value)
    assert HIYA.secret_fields == {"conversation_token", "token"}


def test_a_renewable_credential_comes_from_a_source():
    source = HIYA.credential_source("token", command="echo bearer-FIELDS-0004")
    assert source() == "bearer-FIELDS-0004"
    with pytest.raises(ConfigurationError, match="renews only token, not user_id"):
        HIYA.credential_source("user_id")
