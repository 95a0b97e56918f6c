"""``livecall watch`` killed with SIGKILL mid-call: its CSV and log files stay whole and usable.

No handler runs on SIGKILL, so what is on disk is whatever each write left:
rows and records must be written whole and flushed one by one, and files
opened for appending.  A second run then appends to the same files.
"""

import csv
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from livecall.testing import Simulator

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
pytest.importorskip("livecall_csv")
pytest.importorskip("livecall_logging")

COLUMNS = ["received_at", "provider", "call_id", "role", "text", "offset", "item_idx"]
EARLIER = "an earlier run's last record\n"
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ hiya call_\w+ \w+: .*")
FLOOD = 100_000
ROWS_BEFORE_KILL = 500


def _watch(sim, csv_path, log_path):
    """``livecall watch hiya`` on ``sim`` in a child process, writing both files."""
    credentials = sim.credentials
    command = [
        sys.executable,
        "-m",
        "livecall",
        "watch",
        "hiya",
        "--url",
        sim.url,
        "--format",
        "jsonl",
        "--conversation-token",
        credentials["conversation_token"],
        "--user-id",
        credentials["user_id"],
        "--csv",
        str(csv_path),
        "--log-file",
        str(log_path),
    ]
    environment = dict(os.environ, HIYA_TOKEN=credentials["token"])
    return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _rows(path):
    return path.exists() and len(path.read_bytes().splitlines()) - 1


def _wait_until(predicate, timeout=20.0):
    """Poll files, which nothing notifies about."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.005)


def _transcripts(csv_path):
    with open(csv_path, newline="", encoding="utf-8") as file:
        header, *rows = csv.reader(file)
    assert header == COLUMNS
    assert all(len(row) == len(COLUMNS) for row in rows), "whole rows only"
    return [row[COLUMNS.index("text")] for row in rows]


def _log_lines(log_path):
    text = log_path.read_text(encoding="utf-8")
    assert text.startswith(EARLIER), "appended to, never truncated"
    assert text.endswith("\n"), "the last record is whole"
    lines = text[len(EARLIER) :].splitlines()
    assert all(RECORD.fullmatch(line) for line in lines), [
        line for line in lines if not RECORD.fullmatch(line)
    ][:3]
    return lines


def test_sigkill_mid_call_leaves_whole_rows_and_an_untruncated_log(tmp_path, figures):
    csv_path, log_path = tmp_path / "calls.csv", tmp_path / "events.log"
    log_path.write_text(EARLIER, encoding="utf-8")
    with Simulator("hiya", "flood", flood_count=FLOOD) as sim:
        child = _watch(sim, csv_path, log_path)
        try:
            _wait_until(lambda: _rows(csv_path) >= ROWS_BEFORE_KILL)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        assert not sim.call_ended, "killed mid-call"
    assert child.returncode == -signal.SIGKILL
    said = _transcripts(csv_path)
    assert csv_path.read_bytes().endswith(b"\r\n")
    assert said == [f"flood message {n}" for n in range(1, len(said) + 1)], "in order, none missing"
    logged = [line.rsplit(": ", 1)[1] for line in _log_lines(log_path) if " transcript: " in line]
    assert logged == [f"flood message {n}" for n in range(1, len(logged) + 1)]
    assert abs(len(logged) - len(said)) <= 1, "each event reached both files, but the one being written"
    figures(faults_injected=1)

    with Simulator("hiya", "flood", flood_count=10) as sim:  # the next run appends to both files
        child = _watch(sim, csv_path, log_path)
        assert child.wait(30) == 0, child.stderr.read().decode()
    after = _transcripts(csv_path)
    assert after[: len(said)] == said and after[len(said) :] == [f"flood message {n}" for n in range(1, 11)]
    assert len(_log_lines(log_path)) > len(logged)
