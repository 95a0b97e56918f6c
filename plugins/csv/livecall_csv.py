"""Transcript lines to CSV, one row each, written as they are spoken, and a row per reconnect's gap.

``livecall watch ... --csv PATH`` appends to PATH; ``{call_id}`` in PATH
gives one file per call.  Library users register a ``CsvWriter`` themselves:

    client = PhonicClient(..., plugins=[CsvWriter("calls.csv")])
"""

import contextlib
import csv
import io
import logging
import os
import re
import threading
from typing import Any, BinaryIO, Optional

import livecall

__all__ = ["COLUMNS", "CsvWriter"]

#: The header; the values are those of the JSON-lines record of the transcript.
COLUMNS = (
    "received_at",
    "provider",
    "call_id",
    "role",
    "text",
    "offset",
    "item_idx",
    "item_id",
    "revised",
    "redacted",
)
#: The header of files written before revisions and redactions had columns.
_HEADER_WITHOUT_REVISIONS = COLUMNS[:7]
PLACEHOLDER = "{call_id}"
#: A spreadsheet takes a cell starting with one of these for a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

log = logging.getLogger("livecall.csv")
_REGISTERED_AS = "csv-writer"
_NOT_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]")


@livecall.hookimpl
def livecall_addoption(parser):
    group = parser.add_argument_group("CSV (livecall-csv)")
    group.add_argument(
        "--csv",
        metavar="PATH",
        help="append one row per transcript line to PATH; {call_id} in PATH makes one file per call",
    )
    group.add_argument(
        "--csv-keep-formulas",
        action="store_true",
        help="write cells starting with = + - @ as they are, for programs; by default they get a "
        "leading ' so that a spreadsheet shows them as text",
    )
    group.add_argument(
        "--csv-keep-words",
        action="store_true",
        help="write the words of Phonic calls whose owner asked for zero data retention too; by default "
        "their rows have an empty text",
    )


@livecall.hookimpl
def livecall_configure(config):
    path = getattr(config.options, "csv", None)
    if path:
        writer = CsvWriter(
            path,
            keep_formulas=getattr(config.options, "csv_keep_formulas", False),
            keep_words=getattr(config.options, "csv_keep_words", False),
        )
        config.register(writer, name=_REGISTERED_AS, close=lambda: _finish(config, writer))


def _finish(config, writer: "CsvWriter") -> None:
    """Close the files; rows that could not be written make the run incomplete."""
    writer.close()
    if writer.unwritten:
        config.fail(
            livecall.ExitStatus.INCOMPLETE,
            f"csv: {writer.unwritten} rows could not be written to {writer.path} (the log says why); "
            "the rows written before them are whole",
        )


class CsvWriter:
    """Appends a row per transcript to ``path`` and flushes it at once.

    A reconnect's :class:`livecall.Gap` gets a row too, where it fell among
    the lines: its ``role`` is empty (nobody spoke) and its ``text`` says
    when the connection was lost and reopened, why, and whether the provider
    sends what was missed again (Phonic) or not (Hiya: words said meanwhile
    are missing from the file).

    Flushing row by row means a killed process leaves whole rows only.  The
    header is written only to an empty file, so appending never repeats it; a
    file whose header differs is refused rather than mixed.  With
    ``{call_id}`` in ``path`` each call's file is closed when its call ends;
    otherwise the one file stays open until ``close()``.

    Phonic transcripts are derived from snapshots: a turn gets a row again
    each time its words change, with the same ``item_idx`` and ``revised``
    ``true``.  A row with ``redacted`` ``true`` holds the server's redacted
    words; when it is also ``revised``, the turn's earlier rows still hold
    the words before redaction (rows are only ever appended, never
    rewritten), so scrub them, or keep each turn's last row only, before
    the file goes further.

    The file is safe to open in a spreadsheet: a cell starting with ``=``,
    ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` so it
    shows as text instead of running as a formula (``keep_formulas=True``
    writes the words as they are, for programs).  Credentials are blanked.

    A call whose owner asked Phonic for zero data retention
    (``call.zero_data_retention``) keeps its rows, each with an empty
    ``text``: the file shows who spoke when, never what was said.
    ``keep_words=True`` writes the words anyway.
    A new file is readable by its owner only (it holds personal data); a
    last row cut off by a crash is removed before appending.  A row that
    cannot be written (a full disk) is taken back out, so the file holds
    whole rows only; it is logged and counted in ``unwritten``, and the
    rows after it are tried again.
    """

    def __init__(self, path: str, keep_formulas: bool = False, keep_words: bool = False):
        self.path = os.fspath(path)
        self._keep_formulas = keep_formulas
        self._keep_words = keep_words
        self._per_call = PLACEHOLDER in self.path
        self._lock = threading.Lock()
        self._files: dict[str, _CsvFile] = {}
        #: Rows that could not be written.
        self.unwritten = 0
        directory = os.path.dirname(self.path) or "."
        if PLACEHOLDER not in directory and not os.path.isdir(directory):
            raise livecall.ConfigurationError(
                f"cannot write CSV to {self.path!r}: the directory {directory!r} does not exist"
            )
        if os.path.isdir(self.path):
            raise livecall.ConfigurationError(f"cannot write CSV to {self.path!r}: it is a directory")
        if not self._per_call:
            self._file(self.path)

    def path_for(self, call: livecall.Call) -> str:
        """The file ``call``'s rows go to."""
        if not self._per_call:
            return self.path
        name = _NOT_IN_FILE_NAMES.sub("_", call.id).strip(".") or "call"
        return self.path.replace(PLACEHOLDER, name)

    @livecall.hookimpl
    def livecall_call_start(self, call):
        with self._lock:
            self._file(self.path_for(call))

    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        record = livecall.to_record(
            call, transcript, keep_words=self._keep_words or not call.zero_data_retention
        )
        self._write(call, record)

    @livecall.hookimpl
    def livecall_event(self, call, event):
        if isinstance(event, livecall.Gap):
            self._write(call, _gap_record(call, event))

    def _write(self, call, record) -> None:
        row = [self._cell(record[column]) for column in COLUMNS]
        with self._lock:
            path = self.path_for(call)
            try:
                self._file(path).write(row)
            except OSError as error:
                if not self.unwritten:
                    log.error("a row could not be written to %s: %s", path, error.strerror or error)
                self.unwritten += 1

    @livecall.hookimpl
    def livecall_call_end(self, call, reason):
        if self._per_call:
            with self._lock:
                opened = self._files.pop(self.path_for(call), None)
                if opened is not None:
                    opened.close()

    def close(self) -> None:
        with self._lock:
            files, self._files = list(self._files.values()), {}
        for opened in files:
            opened.close()

    def __enter__(self) -> "CsvWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _cell(self, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"  # as in the JSON-lines record
        if not isinstance(value, str):
            return value
        value = livecall.redact(value)
        if not self._keep_formulas and value.startswith(FORMULA_STARTS):
            return "'" + value
        return value

    def _file(self, path: str) -> "_CsvFile":
        opened = self._files.get(path)
        if opened is None:
            opened = self._files[path] = _CsvFile(path)
        return opened


class _CsvFile:
    """One open CSV file, header checked or written."""

    def __init__(self, path: str):
        header = _header_of(path)
        if header is not None and tuple(header) == _HEADER_WITHOUT_REVISIONS:
            raise livecall.ConfigurationError(
                f"{path!r} was written by an earlier livecall-csv, without the columns item_id, revised, "
                "redacted; choose another file"
            )
        if header is not None and tuple(header) != COLUMNS:
            raise livecall.ConfigurationError(
                f"{path!r} already holds a CSV with other columns ({', '.join(header)}); choose another file"
            )
        try:
            if header is not None:
                _cut_torn_row(path)
            self._file = open(path, "ab", buffering=0, opener=livecall.owner_only)
            #: Where the last whole row ends: a row cut off by a failed write is cut back to it.
            self._end = os.fstat(self._file.fileno()).st_size
            self._torn = False
            if header is None:
                self.write(COLUMNS)
        except OSError as error:
            raise livecall.ConfigurationError(
                f"cannot write CSV to {path!r}: {error.strerror or error}"
            ) from None

    def write(self, row) -> None:
        """Write ``row`` whole, straight to the file, or not at all (OSError).

        The row is made in memory first; if writing it fails partway, the
        file is cut back to its last whole row (a shorter file needs no
        room), or, should even that fail, before the next row is written.
        """
        text = io.StringIO(newline="")
        csv.writer(text).writerow(row)
        encoded = text.getvalue().encode("utf-8")
        if self._torn:
            self._file.truncate(self._end)
            self._torn = False
        unwritten = memoryview(encoded)
        try:
            while unwritten:
                unwritten = unwritten[self._file.write(unwritten) :]
        except OSError:
            self._torn = True
            with contextlib.suppress(OSError):
                self._file.truncate(self._end)
                self._torn = False
            raise
        self._end += len(encoded)

    def close(self) -> None:
        self._file.close()


def _gap_record(call: livecall.Call, gap: livecall.Gap) -> dict[str, Any]:
    """The values of a gap's row: an empty ``role`` (nobody spoke), and in ``text`` when the
    connection was lost and reopened, why, and whether the provider sends what was missed again."""
    record = livecall.to_record(call, gap)
    resent = "sends what was missed again" if gap.replayed else "does not resend what was said"
    text = (
        f"gap: lost {record['lost_at']}, reopened {record['reopened_at']} ({gap.reason}); "
        f"{call.provider.capitalize()} {resent}"
    )
    return {**dict.fromkeys(COLUMNS), **record, "role": "", "text": text, "revised": False, "redacted": False}


def _cut_torn_row(path: str) -> None:
    """Remove a last row that a crash or a full disk cut off, so appended rows stand alone.

    Left there, an unclosed quote in it would swallow every row appended
    after it.  Rows end with a line break outside quotes; the file is read
    once, counting quotes, which is quick even for a large file.
    """
    with open(path, "rb+") as existing:
        size = existing.seek(0, os.SEEK_END)
        end = _last_row_end(existing, size)
        if end < size:
            existing.truncate(end)
            log.warning("%s: removed its last row, cut off by an earlier run (%d bytes)", path, size - end)


def _last_row_end(existing: BinaryIO, size: int) -> int:
    """Where the last whole row ends: after a line break with an even number of quotes before it."""
    existing.seek(size - 1)
    ends_row = existing.read(1) == b"\n"
    existing.seek(0)
    quotes = sum(block.count(b'"') for block in iter(lambda: existing.read(1 << 20), b""))
    if ends_row and quotes % 2 == 0:
        return existing.tell()  # the usual case: nothing was cut off
    existing.seek(0)
    position = end = 0
    inside_quotes = False
    for line in existing:
        position += len(line)
        inside_quotes ^= line.count(b'"') % 2 == 1
        if not inside_quotes and line.endswith(b"\n"):
            end = position
    return end


def _header_of(path: str) -> Optional[list[str]]:
    """The first row of an existing non-empty file, else None."""
    try:
        with open(path, newline="", encoding="utf-8") as existing:
            return next(csv.reader(existing), None)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise livecall.ConfigurationError(
            f"cannot read CSV file {path!r}: {error.strerror or error}"
        ) from None
    except (UnicodeDecodeError, csv.Error):
        raise livecall.ConfigurationError(
            f"{path!r} exists and is not a CSV file; choose another file"
        ) from None
