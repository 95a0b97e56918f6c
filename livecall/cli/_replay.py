"""``livecall replay``: a recorded call served again on this machine, with faults on demand."""

import argparse
import math
import shlex
from typing import Any

from ..config import Config
from ..errors import ConfigurationError
from ._signals import signals
from ._simulate import _port

__all__ = ["add_parser"]


#: The faults of ``--chaos`` (``Replay.FAULTS`` says what each does): livecall.testing is
#: imported only when a replay runs, not on every command line.
FAULTS = "drop, close[=CODE], stall[=S], duplicate, trickle or refuse"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="serve a recorded call (livecall record's file) on this machine, to watch it again",
        description="Serve a recording on 127.0.0.1 as its provider served it, with the simulator's "
        "made-up credentials, and print the livecall watch command that watches it. It exits once "
        "the recording has played to its end and its watchers have disconnected (with --loop, "
        "at Ctrl-C).",
    )
    parser.add_argument("file", metavar="FILE", help="the recording (JSON lines, format 1)")
    parser.add_argument("--port", type=_port, default=0, help="default: a free port")
    parser.add_argument(
        "--speed",
        metavar="N",
        type=_speed,
        default=1.0,
        help="1 plays as recorded, 2 twice as fast, 0 as fast as the client reads (default: %(default)s)",
    )
    parser.add_argument("--loop", action="store_true", help="start over for the next watch once it has ended")
    parser.add_argument(
        "--chaos",
        metavar="FAULT[@POINT]",
        action="append",
        default=[],
        help=f"inject a fault at frame POINT (a number from 1, or a share like 50%%, the default): "
        f"FAULT is {FAULTS}; repeatable (see the docs: Recording and replaying calls)",
    )
    parser.set_defaults(func=replay_command)


def replay_command(config: Config) -> None:
    """Serve the recording until it has played to its end; a bad file or fault is a usage error."""
    from ..testing import Replay

    options, out = config.options, config.stdout
    try:
        replay = Replay(
            options.file, speed=options.speed, loop=options.loop, chaos=options.chaos, port=options.port
        )
    except ValueError as error:  # RecordingError included
        raise ConfigurationError(str(error)) from None
    with replay:
        recording = replay.recording
        until = "starts over after each watch; Ctrl-C stops it" if options.loop else "exits once it has ended"
        join = ["--join"] if replay.awaits_join else []  # the recording waits for the client's join
        out.write(
            f"Replaying {recording.provider} ({recording.frames} frames, {recording.connections} "
            f"connection(s)) at {replay.url}: {until}.\n"
            f"Watch it with:\n  livecall {shlex.join(replay.watch_args(*join))}\n"
        )
        out.flush()
        with signals.stopping(replay.stop):
            replay.wait_finished()


def _speed(text: str) -> float:
    try:
        speed = float(text)
    except ValueError:
        speed = math.nan
    if not (math.isfinite(speed) and speed >= 0):
        raise argparse.ArgumentTypeError(
            f"expected a speed of 0 or more (0: as fast as the client reads), not {text!r}"
        )
    return speed
