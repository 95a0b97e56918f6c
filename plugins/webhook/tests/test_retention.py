"""Zero data retention: what the plugin keeps on disk (its spool, its dead letters) holds no word of
a conversation whose owner asked Phonic to keep nothing; what it forwards still does."""

import json

import pytest

import livecall_webhook
from livecall.testing import Simulator, configure

from .conftest import SECRET, watch

ZERO_RETENTION = {"zero_data_retention": True}
SOME_RETENTION = {"zero_data_retention": False, "transcripts": {"delete_after_hours": 24}}


def words_of(bodies) -> list[str]:
    """The words a watch's events carry, as JSON text: its transcript lines and its tool call's arguments."""
    records = [json.loads(body) for body in bodies]
    said = [json.dumps(record["text"]) for record in records if record["event"] == "transcript"]
    tools = [json.dumps(r["arguments"]) for r in records if r["event"] == "tool_call"]
    return said + tools


@pytest.mark.parametrize(
    "policy, options, kept_on_disk",
    [
        (ZERO_RETENTION, (), False),
        (SOME_RETENTION, (), True),
        (ZERO_RETENTION, ("--webhook-keep-words",), True),
    ],
    ids=["zero-retention", "retention", "zero-retention-kept-anyway"],
)
def test_the_spool_and_dead_letters_of_a_zero_retention_call_hold_no_words(
    tmp_path, receiver_at, policy, options, kept_on_disk
):
    dead = tmp_path / "dead.jsonl"
    receiver = receiver_at(answer=lambda body: 400)  # every event ends up a dead letter
    config = configure(
        livecall_webhook,
        "--webhook-url", receiver.url, "--webhook-secret", SECRET, "--webhook-dead-letter", str(dead),
        *options,
    )  # fmt: skip
    receiver.hold()  # the events wait in the spool meanwhile
    with Simulator("phonic", "sdk", data_retention_policy=policy) as sim:
        call, bodies = watch(sim, plugin_manager=config.plugin_manager)
    [spool] = tmp_path.glob(".dead.jsonl.*.spool")
    spooled = spool.read_text()
    receiver.release()
    config.close()

    words = words_of(bodies)
    assert call.zero_data_retention is (policy is ZERO_RETENTION)
    assert len(words) == 7
    dead_letters = dead.read_text()
    assert len(dead_letters.splitlines()) == len(bodies)
    on_disk = [word in spooled or word in dead_letters for word in words]
    assert on_disk == [kept_on_disk] * len(words)
    forwarded = b"".join(request.body for request in receiver.requests).decode()
    assert all(word in forwarded for word in words), "forwarding is not keeping"
    transcripts = [json.loads(line)["body"] for line in dead_letters.splitlines()]
    lines = [record for record in transcripts if record["event"] == "transcript"]
    assert [line["item_idx"] for line in lines] == [0, 1, 2, 1, 3], "every turn is still there"
