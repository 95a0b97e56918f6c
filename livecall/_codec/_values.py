"""The cattrs hooks for single wire values: checked, never coerced.

cattrs' default hooks call ``str(x)`` or ``int(x)``, which would turn
``"msg": 5`` into ``"5"`` and ``"offset": true`` into ``1``.  A frame that breaks
the spec must become a DecodeError instead, so these hooks only pass values
of the right JSON type through, and raise :class:`Invalid` otherwise.
"""

import base64
import re
from datetime import datetime, timezone
from typing import Any, Callable, Union

from ..events import Role

__all__ = [
    "Invalid",
    "as_is",
    "exactly",
    "format_timestamp",
    "frame_to_json",
    "json_type",
    "shallow",
    "parse_timestamp",
    "structure_role",
]

_JSON_TYPES = {
    type(None): "null",
    bool: "boolean",
    int: "number",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}
_FRACTION = re.compile(r"\.(\d+)")


class Invalid(ValueError):
    """A wire value of the wrong type or form; its message becomes the DecodeError reason."""


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    return _JSON_TYPES.get(value.__class__, type(value).__name__)


def exactly(expected: str, *classes: type) -> Callable[[Any, Any], Any]:
    """A structure hook that lets only instances of exactly ``classes`` through.

    Exact classes, because ``True`` is an ``int`` to ``isinstance`` but not on the wire.
    """

    def structure(value: Any, _: Any) -> Any:
        if value.__class__ in classes:
            return value
        raise Invalid(f"expected {expected}, got {json_type(value)}")

    return structure


def as_is(value: Any, _: Any = None) -> Any:
    """A hook for values that are already what they should be (JSON objects, received_at)."""
    return value


#: Deeper JSON values are refused.  ``json.loads`` accepts nesting up to the
#: recursion limit, but ``json.dumps`` then fails on the same value when called
#: from a deeper stack (a plugin's hook): the event would vanish from that sink.
MAX_NESTING = 100


def shallow(value: Any, _: Any = None) -> Any:
    """``value``, if no array or object in it is nested more than ``MAX_NESTING`` deep.

    For the JSON values the model keeps as they are (``raw``, ``extra``); the
    typed fields around them add a few levels at most.
    """
    if not value:  # most often an empty ``extra``: nothing nested, nothing to walk
        return value
    pending = [(value, 1)] if value.__class__ is dict or value.__class__ is list else []
    while pending:
        container, depth = pending.pop()
        if depth > MAX_NESTING:
            raise Invalid(f"JSON nested more than {MAX_NESTING} levels deep")
        children = container.values() if container.__class__ is dict else container
        pending.extend((child, depth + 1) for child in children if child.__class__ in (dict, list))
    return value


def structure_role(value: Any, _: Any) -> Union[Role, str]:
    """Hiya's ``role``: a :class:`Role` for the three documented speakers, any other
    string as sent (a new speaker must not cost its words), anything else invalid."""
    if value.__class__ is not str:
        raise Invalid(f"expected a role string, got {_preview(value)}")
    return Role.known(value) or value


def parse_timestamp(value: Any, _: Any) -> datetime:
    """ISO 8601 to an aware UTC datetime; naive timestamps are taken as UTC.

    Python < 3.11 reads neither ``Z`` nor fractions other than 3 or 6 digits,
    so both are normalised first: every Python accepts the same timestamps.
    """
    if value.__class__ is not str:
        raise Invalid(f"expected an ISO 8601 string, got {json_type(value)}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        return _utc(datetime.fromisoformat(_FRACTION.sub(_six_digits, text, count=1)))
    except (ValueError, OverflowError):
        raise Invalid(f"expected an ISO 8601 timestamp, got {_preview(value)}") from None


def format_timestamp(value: datetime) -> str:
    """The one timestamp format of records: UTC, microseconds, ``+00:00``.

    Every ``datetime.fromisoformat`` reads it back (3.9 included), and its
    fixed width keeps records sortable as text.
    """
    return _utc(value).isoformat(timespec="microseconds")


def frame_to_json(raw: Union[str, bytes]) -> Union[str, dict[str, str]]:
    """A DecodeError's frame for JSON: text as is, bytes as ``{"base64": "..."}``."""
    if isinstance(raw, bytes):
        return {"base64": base64.b64encode(raw).decode("ascii")}
    return raw


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _six_digits(match: "re.Match[str]") -> str:
    return "." + match.group(1)[:6].ljust(6, "0")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
