"""The benchmarks still run: each at tiny sizes, through ``python -m benchmarks``.

No timing is asserted (benchmarks measure, tests check); what is checked is
that each produces its figures, and that nothing was lost on the way.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_benchmark(name, tmp_path):
    output = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", name, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"== {name}" in completed.stdout
    return json.loads(output.read_text())["results"][name]


def test_throughput(tmp_path):
    result = run_benchmark("throughput", tmp_path)
    assert set(result["messages_per_s"]) == {"raw", "raw_utf8", "livecall", "raw_frames"}
    assert {"median", "q1", "q3", "min", "max"} <= set(result["messages_per_s"]["livecall"])
    assert result["lost"] == {"raw": 0, "raw_utf8": 0, "livecall": 0, "raw_frames": 0}
    assert result["wsaccel_installed"] is False  # else (b) would not measure Python's UTF-8 check


def test_latency(tmp_path):
    result = run_benchmark("latency", tmp_path)
    for name in ("livecall", "raw"):
        assert set(result[name]["ms"]) == {"p50", "p90", "p99", "p99.9", "max"}
        assert result[name]["samples"] == result["sent_per_run"]


def test_concurrency(tmp_path):
    result = run_benchmark("concurrency", tmp_path)
    (run,) = result["runs"]
    assert {"threads", "peak_rss_mb", "cpu_per_s", "latency_ms"} <= set(run)
    assert run["received"] == run["sent"] == run["calls"] * result["seconds"] * result["rounds"]
    assert run["unfinished"] == 0


def test_snapshots(tmp_path):
    result = run_benchmark("snapshots", tmp_path)
    assert {"json_loads_us", "decode_and_diff_us", "ratio"} <= set(result["by_size"]["1-10"])
    assert result["reused_items_last"] == result["items"] - 1
    end = result["end_to_end"]
    assert end["updates"] == end["transcript_lines"] == result["items"]


def test_slow_plugin(tmp_path):
    result = run_benchmark("slow_plugin", tmp_path)
    for watched in (result["default_queue"], result["small_queue"]):
        assert watched["received"] == watched["sent"]
        assert watched["reconnects"] == 0 and watched["connections"] == 1
        assert watched["queue_high_water"] > 0
    assert result["default_queue"]["pings"] > 0
    assert result["default_queue"]["unanswered_pings"] == 0


def test_shutdown(tmp_path):
    result = run_benchmark("shutdown", tmp_path)
    assert set(result["close_s"]) == {"other_thread", "inside_a_hook", "stuck_hook"}
    assert all(spread["runs"] == result["rounds"] for spread in result["close_s"].values())
    assert result["closes_received"] >= 3 * result["rounds"], "every watch was closed by the client"


def test_large_messages(tmp_path):
    result = run_benchmark("large_messages", tmp_path)
    assert set(result) == {"1MiB"}
    assert set(result["1MiB"]["seconds"]) == {"livecall", "websocket-client"}
    assert result["1MiB"]["livecall_vs_websocket_client"] > 0
