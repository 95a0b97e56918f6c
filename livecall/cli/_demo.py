"""``livecall demo``: a Hiya call and a Phonic conversation, simulated here, watched for real.

Everything a real watch does happens: the real clients connect over
WebSockets, join the Hiya call, and hand every event to the installed
plugins, configured once for both calls.
"""

import argparse
import os
import sys
from typing import Any

from ..config import Config
from ..events import ScreeningEnded
from ..hiya import HiyaClient
from ..phonic import PhonicClient
from ._lifecycle import configured
from ._numbers import pace_seconds
from ._signals import signals
from ._simulate import load_simulator
from ._watch import client_options, watch, watch_and_join

__all__ = ["add_parser"]

#: Seconds between simulated messages: slow enough to read along, quick to finish.
PACE = 0.2
#: Where the CSV plugin, when installed, writes the demo's rows.
CSV_PATH = "livecall-demo.csv"


def add_parser(subparsers: Any, plugin_options: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=[plugin_options],
        help="watch a simulated Hiya call and Phonic conversation, no credentials needed",
        description="Start the simulator, watch one Hiya call (joining it) and one Phonic "
        "conversation through the real clients and the installed plugins, then exit.",
    )
    parser.add_argument(
        "--pace",
        metavar="S",
        type=pace_seconds,
        default=PACE,
        help="seconds between simulated messages (default: %(default)s)",
    )
    parser.set_defaults(func=demo_command, join=True)


def demo_command(config: Config) -> None:
    Simulator = load_simulator()
    options = config.options
    # Not set_defaults(): the --csv action is shared with ``watch``, which must not get this default.
    if hasattr(options, "csv") and options.csv is None:
        options.csv = CSV_PATH
    with Simulator("hiya", pace=options.pace) as hiya, Simulator("phonic", pace=options.pace) as phonic:
        with configured(config):
            _say(f"A Hiya call, simulated at {hiya.url}; livecall joins it once screened:")
            client = HiyaClient(**client_options(config, **hiya.client_kwargs()))
            watch_and_join(client, config, after=ScreeningEnded)
            if signals.received is None:  # else a signal closed the call, and the command ends
                _say(f"A Phonic conversation, simulated at {phonic.url}:")
                watch(PhonicClient(**client_options(config, **phonic.client_kwargs())), config)
    csv = getattr(options, "csv", None)
    if csv and os.path.isfile(csv):
        _say(f"The CSV plugin wrote {os.path.abspath(csv)}")


def _say(text: str) -> None:
    """Narration goes to stderr: stdout stays the transcript (or JSON lines, with --format jsonl)."""
    print(f"\n{text}", file=sys.stderr, flush=True)
