"""livecall-csv: a reconnect's gap is a row of its own, where it fell among the lines."""

import csv

import pytest

import livecall
from livecall.testing import Simulator
from livecall_csv import COLUMNS, CsvWriter

RESENT = {"hiya": "Hiya does not resend what was said", "phonic": "Phonic sends what was missed again"}


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return [dict(zip(COLUMNS, row)) for row in list(csv.reader(f))[1:]]


def watch(sim, *plugins):
    """A whole watch of ``sim``; the call, and its transcripts and gaps in the order they came."""
    cls = livecall.HiyaClient if sim.provider == "hiya" else livecall.PhonicClient
    client = cls(**sim.client_kwargs(), plugins=plugins, backoff=livecall.Backoff(0.01, 0.05))
    events = []
    client.on(livecall.Transcript, lambda call, event: events.append(event))
    client.on(livecall.Gap, lambda call, event: events.append(event))
    client.run()
    return client.call, events


@pytest.mark.parametrize(("provider", "options"), [("hiya", {"join_timeout": 0.1}), ("phonic", {})])
def test_a_gap_is_a_row_with_no_role_between_the_lines_of_the_two_connections(tmp_path, provider, options):
    path = tmp_path / "calls.csv"
    with Simulator(provider, "drop", **options) as sim, CsvWriter(str(path)) as writer:
        call, events = watch(sim, writer)
    rows = read_rows(path)
    [gap] = call.gaps
    assert len(rows) == len(events)
    [position] = [i for i, event in enumerate(events) if isinstance(event, livecall.Gap)]
    assert 0 < position < len(events) - 1, "lines before and after it"
    record = livecall.to_record(call, gap)
    assert rows[position] == {
        "received_at": record["received_at"],
        "provider": provider,
        "call_id": call.id,
        "role": "",
        "text": f"gap: lost {record['lost_at']}, reopened {record['reopened_at']} ({gap.reason}); "
        + RESENT[provider],
        "offset": "",
        "item_idx": "",
        "item_id": "",
        "revised": "false",
        "redacted": "false",
    }
    assert all(row["role"] for i, row in enumerate(rows) if i != position), "lines keep their role"


def test_a_gap_row_keeps_its_text_in_a_call_that_keeps_no_words(tmp_path):
    path = tmp_path / "calls.csv"
    policy = {"zero_data_retention": True}
    with Simulator("phonic", "drop", data_retention_policy=policy) as sim, CsvWriter(str(path)) as writer:
        call, _ = watch(sim, writer)
    assert call.zero_data_retention
    rows = read_rows(path)
    [gap_row] = [row for row in rows if not row["role"]]
    assert gap_row["text"].startswith("gap: lost ") and gap_row["text"].endswith(RESENT["phonic"])
    assert {row["text"] for row in rows if row["role"]} == {""}, "no words, but the gap is said"
