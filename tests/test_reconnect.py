"""The reconnect policy: a connection's outcome in, retry after a backoff or finish out; no sockets,
a fixed draw.  One test per decision."""

import pytest

from livecall._watch.backoff import Backoff
from livecall._watch.reconnect import Finish, ReconnectPolicy, Retry
from livecall._wire.protocol import Cause, Outcome
from livecall.call import EndReason
from livecall.errors import AuthenticationError, ProtocolError, RetriesExhaustedError


def policy(max_retries: int = 2, stable_after: float = 10.0) -> ReconnectPolicy:
    return ReconnectPolicy(max_retries, Backoff(base=1.0, cap=8.0), stable_after, draw=lambda: 1.0)


@pytest.mark.parametrize(
    "outcome, expected",
    [
        (Outcome(1000, "", Cause.SERVER_CLOSED), Finish(EndReason.ENDED)),
        (Outcome(1005, "", Cause.SERVER_CLOSED), Finish(EndReason.ENDED)),
        (Outcome(1001, "", Cause.SERVER_CLOSED), Retry(1, 1.0, "closed with code 1001")),
        (Outcome(1006, "gone", Cause.DROPPED), Retry(1, 1.0, "closed with code 1006: gone")),
        (Outcome(1006, "no pong", Cause.NO_PONG), Retry(1, 1.0, "closed with code 1006: no pong")),
        (Outcome(1006, "late", Cause.CLOSE_TIMEOUT), Retry(1, 1.0, "closed with code 1006: late")),
        (Outcome(1011, "", Cause.SERVER_CLOSED), Retry(1, 1.0, "closed with code 1011")),
        (Outcome(1012, "", Cause.SERVER_CLOSED), Retry(1, 1.0, "closed with code 1012")),
        (Outcome(1013, "", Cause.SERVER_CLOSED), Retry(1, 1.0, "closed with code 1013")),
        (Outcome(1014, "", Cause.SERVER_CLOSED), Retry(1, 1.0, "closed with code 1014")),
    ],
)
def test_the_policy_table(outcome, expected):
    assert policy().after_connection(outcome, up_for=1.0) == expected


@pytest.mark.parametrize(
    "outcome, error_type, reason",
    [
        (Outcome(1008, "", Cause.SERVER_CLOSED), AuthenticationError, EndReason.AUTH_FAILED),
        (Outcome(4000, "", Cause.SERVER_CLOSED), ProtocolError, EndReason.ERROR),
        (Outcome(1002, "bad", Cause.PROTOCOL_ERROR), ProtocolError, EndReason.ERROR),
        (Outcome(1007, "bad", Cause.PROTOCOL_ERROR), ProtocolError, EndReason.ERROR),
        (Outcome(1009, "big", Cause.TOO_BIG), ProtocolError, EndReason.ERROR),
    ],
)
def test_protocol_errors_size_refusals_and_auth_are_not_retried(outcome, error_type, reason):
    decision = policy().after_connection(outcome, up_for=100.0)
    assert isinstance(decision, Finish) and decision.reason is reason
    assert isinstance(decision.error, error_type)


def test_attempts_reset_only_after_a_stable_connection():
    rules = policy(max_retries=2, stable_after=10.0)
    drop = Outcome(1006, "", Cause.DROPPED)
    assert rules.after_connection(drop, up_for=9.9) == Retry(1, 1.0, "closed with code 1006")
    assert rules.after_connection(drop, up_for=9.9) == Retry(2, 2.0, "closed with code 1006")
    gave_up = rules.after_connection(drop, up_for=9.9)
    assert isinstance(gave_up, Finish) and isinstance(gave_up.error, RetriesExhaustedError)
    stable = policy(max_retries=2, stable_after=10.0)
    for _ in range(5):
        assert stable.after_connection(drop, up_for=10.0) == Retry(1, 1.0, "closed with code 1006")


def test_failed_connects_count_against_the_same_attempts():
    rules = policy(max_retries=1)
    assert rules.after_failed_connect("refused") == Retry(1, 1.0, "refused")
    assert isinstance(rules.after_failed_connect("refused"), Finish)
