"""``livecall record hiya|phonic -o FILE``: watch a call as ``watch`` does, and write it down to replay.

The watch is ``livecall watch``'s own, options, plugins, output and exit
statuses included; the client also writes a recording (see
``livecall.LiveClient.record``).  A recording that could not be written whole
(a full disk) makes the command exit with ``ExitStatus.INCOMPLETE`` once the
call itself went well: the call was watched, its recording is not all there.
"""

import argparse
from typing import Any, Optional

from .._exit_status import ExitStatus
from .._watch.client import LiveClient
from .._watch.recording import SCRUBS, RecordingWriter
from ..config import Config
from ._watch import add_providers, watch_command

__all__ = ["add_parser"]


def add_parser(subparsers: Any, plugin_options: argparse.ArgumentParser) -> None:
    record = subparsers.add_parser(
        "record",
        help="watch a live call as watch does, and record it to a file to replay",
        description="Watch a live call as `livecall watch` does, and write every frame, close and "
        "reconnect to a file (JSON lines, readable by its owner only, no credentials in it), "
        "for `livecall replay` to play back.",
    )
    add_providers(record, [_recording_options(), plugin_options], record_command, "Watch and record")


def record_command(config: Config) -> Optional[int]:
    options = config.options
    recordings: list[RecordingWriter] = []

    def start_recording(client: LiveClient) -> None:
        recordings.append(client.record(options.output, options.scrub))

    try:
        return watch_command(config, prepare=start_recording)
    finally:  # whatever ended the watch, a recording with a hole in it is reported
        for recording in recordings:
            if recording.error is not None:
                config.fail(
                    ExitStatus.INCOMPLETE,
                    f"the recording {recording.path} is incomplete: {recording.unwritten} entries "
                    f"could not be written ({recording.error.strerror or recording.error})",
                )


def _recording_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("recording")
    group.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        required=True,
        help="write the recording to FILE (replaced if it exists; created readable by its owner only)",
    )
    group.add_argument(
        "--scrub",
        metavar="WHAT",
        type=_scrubs,
        action="extend",
        default=[],
        help="also take out of the recording: phones (each phone number, by a placeholder of its own), "
        "text (the call's words, each letter and digit an x); repeatable, or a comma list",
    )
    return parser


def _scrubs(text: str) -> list[str]:
    """``phones,text`` into its names, each one known."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCRUBS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"cannot scrub {text!r}: choose from {', '.join(SCRUBS)} (repeatable, or a comma list)"
        )
    return names
