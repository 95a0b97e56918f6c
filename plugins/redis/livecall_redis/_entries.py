"""A request's stream entry as Redis hands it over: measured, then read field by field.

Whoever can enqueue can write anything into an entry.  So the worker reads
entries as bytes, and looks at each before any parsing: one too large is
refused on its size alone (none of its fields is decoded, logged or kept),
and one holding a field that is not UTF-8 is refused naming that field, while
the other requests of the same answer are taken as usual.
"""

from collections.abc import Mapping
from typing import Optional

import attrs

__all__ = ["Entry", "read_entry"]


@attrs.frozen
class Entry:
    """What could be read of an entry; ``problem`` says why it cannot be a request, if it cannot.

    ``fields`` holds only what may go into a dead letter as it is: nothing
    of an entry over the size limit, the readable fields of one that is not
    all UTF-8.
    """

    fields: dict[str, str]
    problem: Optional[str] = None


def read_entry(raw: Mapping[bytes, bytes], max_bytes: int) -> Entry:
    """The entry's fields as text, unless it holds more than ``max_bytes`` or bytes that are not UTF-8."""
    size = sum(len(name) + len(value) for name, value in raw.items())
    if size > max_bytes:
        return Entry({}, f"the request holds {size} bytes, more than the {max_bytes} allowed")
    fields: dict[str, str] = {}
    problem: Optional[str] = None
    for raw_name, raw_value in raw.items():
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            problem = "a field's name is not UTF-8 text"
            continue
        try:
            fields[name] = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            problem = f"{name} is not UTF-8 text"
    return Entry(fields, problem)
