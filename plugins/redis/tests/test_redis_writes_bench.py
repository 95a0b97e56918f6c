"""The Redis writes benchmark still runs, at tiny sizes: every mix written, none refused, every
figure there (no timing is asserted: benchmarks measure, tests check)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_redis_writes_benchmark_runs_and_reports_every_mix(redis_server, tmp_path):
    output = tmp_path / "redis_writes.json"
    command = [sys.executable, "-m", "benchmarks.redis_writes", "--quick", "--output", str(output)]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(output.read_text())
    assert [mix["mix"] for mix in result["mixes"]] == ["transcript", "snapshot", "phonic"]
    for mix in result["mixes"]:
        assert mix["events"] > 0 and mix["stream_entries"] > 0
        assert mix["redis_cpu_us_per_event"] > 0 and mix["written_key_bytes"] > 0
    sizes = {mix["mix"]: mix["event_kb"] for mix in result["mixes"]}
    assert sizes["transcript"] < sizes["phonic"] < sizes["snapshot"]
    assert "events one busy Redis core takes a second" in finished.stdout
