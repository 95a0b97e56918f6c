"""Faults a replay injects into a recording: ``NAME[=VALUE][@POINT]``, as ``--chaos`` takes them.

A fault strikes at one frame of the recording (``POINT``: its number,
counting the server's frames from 1, or a share of them like ``50%``, the
default): ``duplicate`` and ``trickle`` change how that frame is sent; the
others break the connection just before it, so that it is the first frame
the next connection gets.
"""

import math
from typing import Optional, Union

import attrs

__all__ = ["FAULTS", "Fault", "parse_fault"]

#: Each fault and what it does, as ``livecall replay --help`` and the docs list them.
FAULTS = {
    "drop": "the TCP connection is cut (a reset, no close frame)",
    "close": "the server closes the connection with CODE (close=CODE, default 1011)",
    "stall": "no more bytes and pings unanswered, TCP open, until the client gives up "
    "(stall=S: for S seconds, then the replay goes on)",
    "duplicate": "the frame is sent twice",
    "trickle": "the frame's bytes are dribbled out in small pieces",
    "refuse": "the connection is cut and the next handshake is refused with HTTP 401",
}
DEFAULT_CLOSE_CODE = 1011
DEFAULT_POINT = "50%"


@attrs.frozen
class Fault:
    """One fault: ``name`` from :data:`FAULTS`, its ``value`` (close code, stall seconds) and
    its ``point``, a frame number (int) or a share of the frames (float, 0 to 1)."""

    name: str
    value: Optional[float]
    point: Union[int, float]
    text: str

    def frame(self, frames: int) -> int:
        """The number of the frame it strikes, in a recording of ``frames`` frames."""
        if isinstance(self.point, float):
            return min(frames, max(1, math.ceil(self.point * frames)))
        if not 1 <= self.point <= frames:
            raise ValueError(f"--chaos {self.text}: this recording has frames 1 to {frames}")
        return self.point


def parse_fault(text: str) -> Fault:
    """The fault ``text`` names; ValueError saying what is wrong with it."""
    spec, _, point_text = text.partition("@")
    name, has_value, value_text = spec.partition("=")
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r} in {text!r}: choose from {', '.join(FAULTS)}")
    value = _value(name, value_text, text) if has_value else None
    if name == "close" and value is None:
        value = DEFAULT_CLOSE_CODE
    return Fault(name, value, _point(point_text or DEFAULT_POINT, text), text)


def _value(name: str, value_text: str, text: str) -> float:
    if name == "close":
        if not (value_text.isdigit() and 1000 <= int(value_text) <= 4999):
            raise ValueError(f"{text!r}: close=CODE takes a close code from 1000 to 4999")
        return int(value_text)
    if name == "stall":
        try:
            seconds = float(value_text)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"{text!r}: stall=S takes a positive number of seconds")
        return seconds
    raise ValueError(f"{text!r}: {name} takes no value")


def _point(point_text: str, text: str) -> Union[int, float]:
    if point_text.endswith("%"):
        try:
            share = float(point_text[:-1])
        except ValueError:
            share = math.nan
        if not 0 <= share <= 100:
            raise ValueError(f"{text!r}: a share of the recording is from 0% to 100%")
        return share / 100
    if not point_text.isdigit() or int(point_text) < 1:
        raise ValueError(f"{text!r}: the point is a frame number from 1, or a share like 50%")
    return int(point_text)
