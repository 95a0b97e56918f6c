"""(9) What watching a process costs: metrics and tracing, off and on, beside the code before them.

Throughput (as in ``throughput.py``: 100,000 Hiya transcripts flat out, one
plugin counting them), each run in a fresh process so that a process-wide
switch never leaks into the next, the variants taking turns:

(before) livecall as it was before it could be observed (``--baseline``, a
         git revision: its ``livecall/`` is exported to a temporary folder);
(absent) livecall now, nothing switched on: what every user pays;
(metrics) livecall now, metrics on and served (``observability.serve()``);
(tracing) livecall now, spans made by the OpenTelemetry SDK and dropped
          unexported (a sampler that records them all): for information.

Then 5,000 paced calls in one process (``concurrency.py``'s set-up), with the
metrics endpoint served and scraped every second, against the same without.
"""

import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from . import concurrency
from ._report import Row, number, spread_text, verdict
from ._server import Script, ServerProcess
from ._stats import spread

NAME = "observability"
#: The last revision before livecall could be observed: the "today" the issue compares with.
BASELINE = "4dc72bc"
FULL = dict(messages=100_000, rounds=5, calls=5000, seconds=10, call_rounds=3)
QUICK = dict(messages=2_000, rounds=1, calls=3, seconds=1, call_rounds=1)
VARIANTS = ("before", "absent", "metrics", "tracing")
#: Targets: nothing switched on costs at most 5 %, metrics at most 15 %, and 15 % more CPU at 5,000 calls.
ABSENT_VS_BEFORE, METRICS_VS_ABSENT, CPU_METRICS_VS_OFF = 0.95, 0.85, 1.15
_ROOT = Path(__file__).resolve().parent.parent
_CHILD = Path(__file__).resolve().parent / "_observed_run.py"


def _export(revision: str, into: Path) -> Path:
    """``livecall/`` as it was at ``revision``, in ``into``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision, "livecall"],
        cwd=_ROOT,
        check=True,
        stdout=subprocess.PIPE,
    ).stdout
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(into)
    return into


def _one(variant: str, url: str, before: Path) -> dict[str, Any]:
    source = before if variant == "before" else _ROOT
    output = subprocess.run(
        [sys.executable, str(_CHILD), str(source), variant, url],
        cwd=_ROOT,
        check=True,
        stdout=subprocess.PIPE,
        env={**os.environ, "LIVECALL_LOAD_PLUGINS": ""},
    ).stdout
    return dict(json.loads(output))


def run(messages: int, rounds: int, calls: int, seconds: int, call_rounds: int) -> dict[str, Any]:
    revision = os.environ.get("LIVECALL_BENCH_BASELINE", BASELINE)
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as folder, ServerProcess(Script(count=messages)) as server:
        before = _export(revision, Path(folder))
        for _ in range(rounds):
            for variant in VARIANTS:
                runs[variant].append(_one(variant, server.url, before))
    rates = {
        variant: spread(each["messages"] / each["seconds"] for each in results)
        for variant, results in runs.items()
    }
    expected = messages + 1
    pairs = [
        (concurrency._measure("livecall", calls, seconds), concurrency._measure("metrics", calls, seconds))
        for _ in range(call_rounds)
    ]
    cpu_ratios = [on["cpu_per_s"] / off["cpu_per_s"] for off, on in pairs]
    return dict(
        baseline=revision,
        messages=messages,
        rounds=rounds,
        sources={variant: results[0]["livecall"] for variant, results in runs.items()},
        lost={
            variant: sum(expected - each["messages"] for each in results) for variant, results in runs.items()
        },
        messages_per_s=rates,
        absent_vs_before=rates["absent"]["median"] / rates["before"]["median"],
        metrics_vs_absent=rates["metrics"]["median"] / rates["absent"]["median"],
        tracing_vs_absent=rates["tracing"]["median"] / rates["absent"]["median"],
        calls=calls,
        cpu_per_s={
            "off": [off["cpu_per_s"] for off, _ in pairs],
            "metrics": [on["cpu_per_s"] for _, on in pairs],
        },
        events={"off": [off["received"] for off, _ in pairs], "metrics": [on["received"] for _, on in pairs]},
        sent={"off": [off["sent"] for off, _ in pairs], "metrics": [on["sent"] for _, on in pairs]},
        cpu_metrics_vs_off=statistics.median(cpu_ratios),
        cpu_ratio_range=[min(cpu_ratios), max(cpu_ratios)],
    )


LABELS = {
    "before": "(before) livecall before observability",
    "absent": "(absent) nothing switched on",
    "metrics": "(metrics) metrics served",
    "tracing": "(tracing) OpenTelemetry spans",
}


def table(result: dict[str, Any]) -> list[Row]:
    rates = result["messages_per_s"]
    rows = [Row(LABELS[variant], spread_text(rates[variant], "msg/s")) for variant in VARIANTS]
    absent, metrics = result["absent_vs_before"], result["metrics_vs_absent"]
    cpu, (low, high) = result["cpu_metrics_vs_off"], result["cpu_ratio_range"]
    off, on = result["cpu_per_s"]["off"], result["cpu_per_s"]["metrics"]
    lost = sum(result["lost"].values()) + sum(
        sent - received
        for kind in ("off", "metrics")
        for sent, received in zip(result["sent"][kind], result["events"][kind])
    )
    return rows + [
        Row(
            "absent / before", f"{absent:.2f}", f">= {ABSENT_VS_BEFORE}", verdict(absent >= ABSENT_VS_BEFORE)
        ),
        Row(
            "metrics / absent",
            f"{metrics:.2f}",
            f">= {METRICS_VS_ABSENT}",
            verdict(metrics >= METRICS_VS_ABSENT),
        ),
        Row("tracing / absent", f"{result['tracing_vs_absent']:.2f}"),
        Row(
            f"{result['calls']} calls, CPU s/s off | metrics",
            f"{' / '.join(number(x) for x in off)} | {' / '.join(number(x) for x in on)}",
        ),
        Row(
            f"{result['calls']} calls, CPU metrics / off",
            f"{cpu:.2f} ({low:.2f}-{high:.2f})",
            f"<= {CPU_METRICS_VS_OFF}",
            verdict(cpu <= CPU_METRICS_VS_OFF),
        ),
        Row("messages lost", str(lost), "0", verdict(lost == 0)),
    ]
