"""``python -m benchmarks``: run the benchmarks, print the table, write the results as JSON.

``--quick`` runs each with tiny sizes (seconds in all: a check that they
work, not a measurement); ``--only NAME`` runs the named ones.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

import websocket

import livecall

from . import (
    concurrency,
    large_messages,
    latency,
    observability,
    replay,
    shutdown,
    slow_plugin,
    snapshots,
    throughput,
)
from ._report import Row, missed, render

MODULES = (
    throughput,
    latency,
    concurrency,
    snapshots,
    slow_plugin,
    shutdown,
    large_messages,
    replay,
    observability,
)
BENCHMARKS = {module.NAME: module for module in MODULES}
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        cores=os.cpu_count(),
        python=platform.python_version(),
        implementation=platform.python_implementation(),
        system=f"{platform.system()} {platform.machine()}",
        livecall=livecall.__version__,
        websocket_client=websocket.__version__,
    )


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the benchmarks run")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only these")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    results: dict[str, Any] = {}
    sections: dict[str, list[Row]] = {}
    extra_lines: list[str] = []
    for name in args.only or BENCHMARKS:
        module = BENCHMARKS[name]
        print(f"running {name} ...", file=sys.stderr, flush=True)
        result = module.run(**(module.QUICK if args.quick else module.FULL))
        results[name] = result
        sections[name] = module.table(result)
        if hasattr(module, "histograms"):
            extra_lines += module.histograms(result)
    about = dict(machine(), quick=args.quick, seconds=round(time.perf_counter() - started, 1))

    title = (
        f"livecall benchmarks, {about['date']}: {about['cores']} cores, "
        f"{about['implementation']} {about['python']}, {about['seconds']} s"
    )
    print(render(title, sections))
    print("\n" + "\n".join(extra_lines))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(dict(machine=about, results=results), indent=2) + "\n")
    misses = missed(sections)
    print(f"\ntargets missed: {', '.join(misses)}" if misses else "\nall targets met")
    print(f"results written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
