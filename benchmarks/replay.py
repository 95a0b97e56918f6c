"""(8) Replay at ``--speed 0``: does it send as fast as livecall can read?

A Hiya recording of ``frames`` frames (transcripts, then ``event:callEnd``
and a close) is served by ``livecall replay FILE --speed 0 --loop`` in a
process of its own.  Two readers take turns on it, ``rounds`` times each:

(a) the replay's send rate: a reader far faster than livecall (websocket-client's
    socket, livecall's protocol core, ``json.loads``), so the figure is the
    replay's own;
(b) livecall's read rate: ``HiyaClient`` decoding every frame into an event,
    one plugin counting them.

Frames per second from connect to ``event:callEnd``.  Target: a >= b, so a
replay at speed 0 never holds a client back.
"""

import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websocket

import livecall
from livecall._wire.protocol import Protocol

from . import _payloads
from ._report import Row, spread_text, verdict
from ._stats import spread
from .throughput import counted_run

NAME = "replay"
FULL = dict(frames=10_000, rounds=5)
QUICK = dict(frames=500, rounds=1)
VARIANTS = ("replay_sends", "livecall_reads")


def write_recording(path: Path, frames: int) -> None:
    """``frames`` frames of one Hiya call, 1 ms apart as recorded (speed 0 ignores that)."""
    texts = [*_payloads.transcripts(frames - 1), _payloads.CALL_END]
    header = {
        "livecall_recording": 1,
        "provider": "hiya",
        "livecall": livecall.__version__,
        "recorded_at": "2026-01-01T00:00:00+00:00",
        "scrubbed": [],
    }
    entries = [dict(kind="open", path="/ws/v1/liveCalls")]
    entries += [dict(kind="recv", text=text) for text in texts]
    entries += [dict(kind="close", by="server", code=1000, reason=""), dict(kind="end", reason="ended")]
    lines = [header] + [dict(t=number / 1000, conn=0, **entry) for number, entry in enumerate(entries)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")


def start_replay(path: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """``livecall replay`` in another process, and the watch's options it printed."""
    command = [sys.executable, "-m", "livecall", "replay", str(path), "--speed", "0", "--loop"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    words = shlex.split([process.stdout.readline() for _ in range(3)][-1])
    flags = dict(zip(words[3::2], words[4::2]))  # livecall watch hiya --url URL --token T ...
    return process, {flag[2:].replace("-", "_"): value for flag, value in flags.items()}


def replay_sends(options: dict[str, str]) -> dict[str, float]:
    """Read with a loop much faster than livecall: what it measures is the replay's sending."""
    ws = websocket.WebSocket(skip_utf8_validation=True)
    url = f"{options['url']}/ws/v1/liveCalls?conversationToken={options['conversation_token']}"
    headers = [f"Authorization: Bearer {options['token']}", f"x-hiya-account-user-id: {options['user_id']}"]
    started = time.perf_counter()
    ws.connect(url, header=headers)
    protocol = Protocol(time.monotonic())
    count = 0
    while True:
        protocol.receive_data(ws.sock.recv(65536), time.monotonic())
        for payload in protocol.messages_received():
            count += 1
            if json.loads(payload)["type"] == "event:callEnd":
                seconds = time.perf_counter() - started
                ws.close()
                return dict(frames=count, seconds=seconds)


def livecall_reads(options: dict[str, str]) -> dict[str, float]:
    count, seconds = counted_run(lambda counter: livecall.HiyaClient(**options, plugins=[counter]))
    return dict(frames=count, seconds=seconds)


def run(frames: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list] = {variant: [] for variant in VARIANTS}
    readers = {"replay_sends": replay_sends, "livecall_reads": livecall_reads}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "call.jsonl"
        write_recording(path, frames)
        process, options = start_replay(path)
        try:
            for _ in range(rounds):
                for variant in VARIANTS:
                    runs[variant].append(readers[variant](options))
        finally:
            process.terminate()
            process.wait(10)
    rates = {
        variant: spread(r["frames"] / r["seconds"] for r in results) for variant, results in runs.items()
    }
    return dict(
        frames=frames,
        rounds=rounds,
        lost={variant: sum(frames - r["frames"] for r in results) for variant, results in runs.items()},
        frames_per_s=rates,
        sends_vs_reads=rates["replay_sends"]["median"] / rates["livecall_reads"]["median"],
    )


LABELS = {"replay_sends": "(a) replay --speed 0 sends", "livecall_reads": "(b) livecall reads"}


def table(result: dict[str, Any]) -> list[Row]:
    rows = [
        Row(LABELS[variant], spread_text(result["frames_per_s"][variant], "frames/s")) for variant in VARIANTS
    ]
    ratio, lost = result["sends_vs_reads"], sum(result["lost"].values())
    return rows + [
        Row("a / b", f"{ratio:.2f}", ">= 1", verdict(ratio >= 1)),
        Row("frames lost", str(lost), "0", verdict(lost == 0)),
    ]
