"""Text for a person, on a terminal or in a log line: nothing in it may act, hide or forge.

A transcript's words come from a caller, and for Phonic from an LLM a caller
can steer; error texts come from the server.  Written raw, an ESC sequence
would drive the terminal (OSC 52 writes the clipboard, OSC 8 hides links), a
bare CR or U+202E would hide or reorder what is shown, and a newline would
forge a second log line.  So text for people shows every such character as
an escape, as OpenSSH shows a server's text; data (JSON lines, the CSV's
cells, webhook bodies) keeps the exact words.
"""

import logging
import unicodedata
from typing import Any

__all__ = ["PrintableFormatter", "printable", "printable_lines"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: Control, format (bidi overrides, zero-width spaces), surrogate, private-use and
#: unassigned characters, and the line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
#: Zero-width joiners join emoji and the letters of scripts such as Persian and Hindi.
_KEPT = frozenset("\u200c\u200d")


def printable(text: str) -> str:
    """``text`` with every character that would not show as itself escaped visibly.

    Control characters (ESC becomes ``\\x1b``, a newline ``\\n``), bidi
    overrides (``\\u202e``), zero-width and other invisible format characters,
    lone surrogates, private-use and unassigned code points, line and paragraph
    separators.  Letters, digits, punctuation, symbols, emoji and spaces of
    every script stay as they are, so ordinary text is returned unchanged.
    The result is one line, and escaping it again changes nothing.
    """
    if text.isprintable():
        return text
    return "".join([_shown(character) for character in text])


def _shown(character: str) -> str:
    if (
        character.isprintable()
        or character in _KEPT
        or unicodedata.category(character) not in _HIDDEN_CATEGORIES
    ):
        return character
    named = _NAMED.get(character)
    if named is not None:
        return named
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable_lines(text: str) -> str:
    """Each line of a multi-line text (a traceback) escaped; the line breaks between them kept."""
    return "\n".join(printable(line) for line in text.split("\n"))


class PrintableFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose records are one line each, whatever their arguments hold.

    The formatted message is passed through :func:`printable`, so a newline
    or an escape sequence in a server's text or a transcript shows as
    ``\\n`` or ``\\x1b`` and cannot forge a record or reach a terminal.  A
    traceback, when a record has one, keeps its line breaks; each of its
    lines is escaped.
    """

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_text:  # already formatted, by a RedactingFilter for one
            record.exc_text = printable_lines(record.exc_text)
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return printable_lines(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return printable_lines(super().formatStack(stack_info))
