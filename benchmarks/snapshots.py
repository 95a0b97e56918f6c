"""(4) Phonic snapshots: what an update costs as the conversation grows.

Every ``conversation-updated`` carries the whole conversation, so the cost
that matters is per update against ``json.loads`` of the same frame, which
any client pays.  Timed in process: the Phonic decoder plus the transcript
tracker (decode and diff) right after ``json.loads`` of each frame, over the
conversation growing to ``items`` turns, ``rounds`` times with fresh state.
A cold decode of the last frame (a new decoder, nothing cached) shows what
reusing unchanged items saves.  Then one end-to-end run through
``PhonicClient`` checks that each turn becomes exactly one transcript line.
"""

import json
import statistics
import time
from datetime import datetime, timezone
from typing import Any

import livecall
from livecall.phonic import PHONIC
from livecall.phonic._snapshots import SnapshotTracker

from . import _payloads
from ._report import Row, number, verdict
from ._server import Script, ServerProcess
from ._stats import percentiles
from .throughput import raw_loop

NAME = "snapshots"
FULL = dict(items=500, rounds=5)
QUICK = dict(items=20, rounds=1)
#: Conversation sizes reported on their own, each with the median of the ``WINDOW`` updates up to it.
MARKS = (10, 100, 250, 500)
WINDOW = 10


def _one_round(frames: list[bytes]) -> list[tuple]:
    """(json.loads seconds, decode-and-diff seconds) per update, with fresh state."""
    clock = time.perf_counter
    received_at = datetime.now(timezone.utc)
    decoder, tracker = PHONIC.new_decoder(), SnapshotTracker()
    timings = []
    for frame in frames:
        started = clock()
        json.loads(frame)
        parsed = clock()
        event = decoder.decode(frame, received_at)
        tracker.new_events(event.conversation, received_at)
        timings.append((parsed - started, clock() - parsed))
    return timings


def _cold_decode(frame: bytes) -> float:
    received_at = datetime.now(timezone.utc)
    decoder, tracker = PHONIC.new_decoder(), SnapshotTracker()
    started = time.perf_counter()
    tracker.new_events(decoder.decode(frame, received_at).conversation, received_at)
    return time.perf_counter() - started


def _reused_items(frames: list[bytes]) -> int:
    """How many items of the last update are the very objects the one before decoded."""
    received_at = datetime.now(timezone.utc)
    decoder = PHONIC.new_decoder()
    before = decoder.decode(frames[-2], received_at).conversation.items
    after = decoder.decode(frames[-1], received_at).conversation.items
    return sum(old is new for old, new in zip(before, after))


class Lines:
    """A plugin counting snapshots and the transcript lines derived from them."""

    def __init__(self) -> None:
        self.updates = 0
        self.lines = 0

    @livecall.hookimpl
    def livecall_event(self, call: livecall.Call, event: livecall.Event) -> None:
        if type(event) is livecall.ConversationUpdated:
            self.updates += 1

    @livecall.hookimpl
    def livecall_transcript(self, call: livecall.Call, transcript: livecall.Transcript) -> None:
        self.lines += 1


def end_to_end(items: int) -> dict[str, Any]:
    """The whole stream through ``PhonicClient``, and through the raw loop for scale."""
    lines = Lines()
    with ServerProcess(Script(count=items, provider="phonic")) as server:
        client = livecall.PhonicClient(
            _payloads.CONVERSATION_ID, api_key="bench-key", url=server.url, plugins=[lines]
        )
        started = time.perf_counter()
        client.run()
        elapsed = time.perf_counter() - started
        raw = raw_loop(server.url, skip_utf8_validation=True, final="conversation-ended")
    return dict(
        updates=lines.updates, transcript_lines=lines.lines, seconds=elapsed, raw_loop_seconds=raw["seconds"]
    )


def run(items: int, rounds: int) -> dict[str, Any]:
    frames = [frame.encode() for frame in _payloads.snapshots(items)]
    _one_round(frames[:2])  # the converter builds its hooks on first use: not an update's cost
    rounds_timings = [_one_round(frames) for _ in range(rounds)]
    per_update = [tuple(statistics.median(values) for values in zip(*runs)) for runs in zip(*rounds_timings)]
    marks = {}
    for size in (mark for mark in MARKS if mark <= items):
        first = max(1, size - WINDOW + 1)
        window = per_update[first - 1 : size]
        loads_s = statistics.median(loads for loads, _ in window)
        decode_s = statistics.median(decode for _, decode in window)
        marks[f"{first}-{size}"] = dict(
            frame_kb=len(frames[size - 1]) / 1024,
            json_loads_us=1e6 * loads_s,
            decode_and_diff_us=1e6 * decode_s,
            ratio=decode_s / loads_s,
        )
    total_loads = sum(loads for loads, _ in per_update)
    total_decode = sum(decode for _, decode in per_update)
    cold = min(_cold_decode(frames[-1]) for _ in range(rounds))
    return dict(
        items=items,
        rounds=rounds,
        by_size=marks,
        total_ratio=total_decode / total_loads,
        ratio_per_update=percentiles([decode / loads for loads, decode in per_update], (50, 95)),
        cold_decode_last_us=1e6 * cold,
        cached_decode_last_us=1e6 * per_update[-1][1],
        reused_items_last=_reused_items(frames),
        end_to_end=end_to_end(items),
    )


def table(result: dict[str, Any]) -> list[Row]:
    rows = [
        Row(
            f"updates of {span} items ({mark['frame_kb']:.0f} KB)",
            f"json.loads {number(mark['json_loads_us'])} us, decode+diff "
            f"{number(mark['decode_and_diff_us'])} us: {mark['ratio']:.2f}x",
            "<= 2x",
            verdict(mark["ratio"] <= 2),
        )
        for span, mark in result["by_size"].items()
    ]
    per_update = result["ratio_per_update"]
    end = result["end_to_end"]
    return rows + [
        Row("all updates", f"{result['total_ratio']:.2f}x", "<= 2x", verdict(result["total_ratio"] <= 2)),
        Row("ratio per update p50 / p95", f"{per_update['p50']:.2f}x / {per_update['p95']:.2f}x"),
        Row(
            "last update, cached / cold",
            f"{number(result['cached_decode_last_us'])} / {number(result['cold_decode_last_us'])} us",
        ),
        Row(
            "items reused from the update before",
            f"{result['reused_items_last']} of {result['items'] - 1}",
            "all",
            verdict(result["reused_items_last"] == result["items"] - 1),
        ),
        Row(
            "PhonicClient end to end",
            f"{end['updates']} updates, {end['transcript_lines']} lines, {end['seconds']:.2f} s "
            f"(raw loop {end['raw_loop_seconds']:.2f} s)",
            "a line per turn",
            verdict(end["updates"] == end["transcript_lines"] == result["items"]),
        ),
    ]
