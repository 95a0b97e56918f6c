"""Each provider's watch on its own: no client, no socket, no thread.

Credentials are registered for redaction process-wide: each here is a value no message holds.
"""

import pytest

from livecall import Ack, Call, ConfigurationError, ConnectionLostError
from livecall.hiya import HIYA, _PendingAck
from livecall.phonic import PHONIC


def test_hiya_watch_builds_each_request_with_the_base_url_it_is_given():
    watch = HIYA.new_watch("bearer-WATCH-0001", "conversation-WATCH-0002", "user-3", "2.1.3", {})
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
    watch = HIYA.new_watch("bearer-WATCH-0001", "conversation-WATCH-0002", "user", None, acks)
    call = Call(provider="hiya", id="c")
    first, ack = acks["a"], Ack(ack_id="a")
    assert list(watch.handle(call, ack)) == []
    assert list(acks) == ["b"] and first.done.is_set() and first.ack is ack
    error = ConnectionLostError("connection lost: test")
    pending = acks["b"]
    watch.connection_lost(error)
    assert acks == {} and pending.done.is_set() and pending.error is error and pending.ack is None


def test_phonic_watch_quotes_the_conversation_id_and_puts_a_session_token_in_the_query():
    watch = PHONIC.new_watch("conv/1", None, "session-WATCH-0004")
    request = watch.request("wss://example.test")
    assert (
        request.url == "wss://example.test/v1/conversations/conv%2F1/live/ws?session_token=session-WATCH-0004"
    )
    assert list(request.headers) == []
    assert list(watch.handle(Call(provider="phonic", id="conv/1"), Ack(ack_id="x"))) == []


def test_a_watch_checks_the_arguments_its_client_was_given():
    with pytest.raises(ConfigurationError, match="not both"):
        PHONIC.new_watch("conv", "key-WATCH-0005", "session-WATCH-0004")
    with pytest.raises(ConfigurationError, match="user_id"):
        HIYA.new_watch("bearer-WATCH-0001", "conversation-WATCH-0002", None, None, {})
