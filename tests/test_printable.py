"""``livecall.printable`` and ``livecall.PrintableFormatter``: text for people, nothing hidden in it."""

import logging
import sys

import pytest

import livecall


@pytest.mark.parametrize(
    "raw, shown",
    [
        ("\x1b]52;c;ZXZpbA==\x07", "\\x1b]52;c;ZXZpbA==\\x07"),  # OSC 52: writes the clipboard
        ("\x1b]8;;https://evil.example\x07x", "\\x1b]8;;https://evil.example\\x07x"),  # OSC 8: a hidden link
        ("a\rb\nc\td", "a\\rb\\nc\\td"),
        ("\x7f\x9b31m", "\\x7f\\x9b31m"),  # DEL, and the 8-bit CSI
        ("\u202eevil\u2066x\u200by", "\\u202eevil\\u2066x\\u200by"),  # bidi overrides, a zero-width space
        ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),  # line and paragraph separators
        ("\ud800 \ue000 \U000f0000", "\\ud800 \\ue000 \\U000f0000"),  # lone surrogate, private use
    ],
)
def test_what_a_terminal_would_act_on_is_escaped(raw, shown):
    assert livecall.printable(raw) == shown
    assert livecall.printable(shown) == shown, "escaping twice changes nothing"


@pytest.mark.parametrize(
    "text",
    [
        "naïve café ☎",
        "Привет, 中文, العربية",
        "😀 👍🏽 👨\u200d👩\u200d👧",
        "a\u00a0b\u3000c",
        "میخواهم\u200cبروم",
    ],
)
def test_ordinary_text_of_every_script_is_unchanged(text):
    assert livecall.printable(text) == text


def test_the_formatter_keeps_each_record_on_one_line():
    formatter = livecall.PrintableFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "said: %s", ("a\nERROR forged\x1b[2J",), None)
    assert formatter.format(record) == "ERROR said: a\\nERROR forged\\x1b[2J"


def test_the_formatter_escapes_each_line_of_a_traceback():
    formatter = livecall.PrintableFormatter("%(message)s")
    try:
        raise ValueError("bad \x1b[31m words")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = formatter.format(record).splitlines()
    assert lines[0] == "failed" and lines[1].startswith("Traceback")
    assert lines[-1] == "ValueError: bad \\x1b[31m words"
