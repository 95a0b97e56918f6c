"""Connections cut mid-call, again and again: nothing said is lost or said twice."""

import pytest

from livecall import ConversationEnded, EndReason, Reconnecting, Transcript
from livecall.testing import Simulator

TURNS = 200
CUTS = 20
MODES = ("reset", 1001, 1011, 1012)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_line_arrives_once_in_order_through_twenty_cuts(client_for, recorder, figures, seed):
    with Simulator("phonic", "long+drop", drops=CUTS, drop_mode=MODES, seed=seed, lose=1) as sim:
        # Each cut is an outage of its own: the connection before it worked, however briefly.
        client = client_for(sim, max_retries=2, stable_after=0.0)
        client.run()
        records = sim.wait_for(lambda: all(record.closed for record in sim.connections) and sim.connections)
    lines = [(line.item_idx, line.text) for line in recorder.events(Transcript)]
    figures(
        events_sent=TURNS,
        events_received=len(lines),
        events_lost=TURNS - len(set(lines)),
        faults_injected=sum(record.reset or record.server_close_code in MODES for record in records),
    )
    assert [idx for idx, _ in lines] == list(range(TURNS)), "each turn once, in order"
    assert all(text.endswith(f"({idx})") for idx, text in lines)
    assert isinstance(recorder.events()[-1], ConversationEnded)
    assert client.call.end_reason is EndReason.ENDED
    assert len(records) == CUTS + 1 and all(record.accepted for record in records)
    cuts = records[:-1]
    assert {record.server_close_code for record in cuts} == {None, *MODES[1:]}, "every kind of cut"
    reasons = [reconnect.reason for reconnect in recorder.events(Reconnecting)]
    assert len(reasons) == CUTS
    for record, reason in zip(cuts, reasons):
        code = 1006 if record.reset else record.server_close_code
        assert reason.startswith(f"closed with code {code}"), (record, reason)
        assert record.reset or record.client_close_code is not None, "the close was answered"
