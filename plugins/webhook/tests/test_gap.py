"""livecall-webhook: a reconnect's gap is posted like any event, once, in its place."""

import json

import livecall
from livecall.testing import Simulator
from livecall_webhook import Sender, WebhookForwarder

from .conftest import SECRET, verified, watch


def test_a_gap_is_posted_once_between_the_reconnect_and_what_followed(tmp_path, receiver):
    forwarder = WebhookForwarder(Sender(receiver.url, SECRET), str(tmp_path / "dead.jsonl"))
    with Simulator("hiya", "drop", join_timeout=0.1) as sim:
        call, bodies = watch(sim, forwarder, backoff=livecall.Backoff(0.01, 0.05))
    forwarder.close(timeout=10)
    assert receiver.accepted() == bodies
    posted = [json.loads(body) for body in receiver.accepted()]
    kinds = [body["event"] for body in posted]
    assert kinds.count("gap") == 1
    position = kinds.index("gap")
    assert kinds[position - 1] == "reconnecting" and position < len(kinds) - 1
    [gap] = call.gaps
    assert posted[position] == livecall.to_record(call, gap)
    assert (
        posted[position]["replayed"] is False
        and posted[position]["lost_at"] <= posted[position]["reopened_at"]
    )
    assert all(verified(request) for request in receiver.requests)
