"""Credentials that never print, and scrubbing them from text that might.

Every value a ``Credential`` hands out is remembered so that log filters and
error messages can blank it, whatever path it took into a string: as it is,
percent-encoded in a URL, escaped in JSON or HTML.  So is every Phonic
``audio_url`` the decoder sees (:func:`remember_audio_url`): a presigned link
is a credential to the turn's audio, but one that ``livecall watch --format
jsonl --keep-audio-urls`` may print on purpose, so it is told apart.
"""

import html
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from re import Pattern
from typing import Callable, Optional, Union
from urllib.parse import quote, quote_plus

__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "Credential",
    "HiddenLines",
    "RedactingFilter",
    "redact",
    "remember_audio_url",
]

log = logging.getLogger("livecall.secrets")

Source = Union[str, Callable[[], str], None]
#: What a secret is replaced with, wherever it is blanked.
MASK = "***"

#: Shorter values could be ordinary words: blanking them would blank those words
#: in every transcript, so they are not redacted, and a warning says so.
MIN_SECRET_LENGTH = 8

#: Secrets this long are blanked wherever they appear, even glued to other letters:
#: no ordinary word holds one.  Shorter ones are blanked only as whole words.
WHOLE_WORD_BELOW = 16
#: Not after or before a letter or digit: a short secret is not blanked inside a longer word.
_WORD_BEFORE = r"(?<![^\W_])"
_WORD_AFTER = r"(?![^\W_])"


#: Characters every encoding below leaves as they are.
_ANCHOR_CHARACTERS = "[A-Za-z0-9_.~-]"
#: Anchors are indexed by pieces this long...
_GRAM = 4
#: ... and shorter anchors are looked for one by one (most secrets are their own anchor,
#: and no secret is shorter than ``MIN_SECRET_LENGTH``).
_SHORTEST_ANCHOR = 8
#: Every piece of a text's runs that starts at a multiple of this is looked up: an
#: anchor of ``_SHORTEST_ANCHOR`` characters holds one of its first ``_STRIDE`` pieces.
_STRIDE = _SHORTEST_ANCHOR - _GRAM + 1
#: Every byte that is not an anchor character, made a space: a text's runs of anchor characters
#: are then the words of its ASCII bytes (any other character is encoded as ``?``, a space too).
_RUN_BREAKS = bytes(byte if re.fullmatch(_ANCHOR_CHARACTERS, chr(byte)) else ord(" ") for byte in range(256))
#: Up to this many anchors, each is looked for in the text as it is (``anchor in text``, a
#: search in C, about a microsecond over 8 KB): cheaper than cutting the text into runs.
_FEW_ANCHORS = 32


class _Secret:
    """One secret: its anchor, and the pattern of all its forms, compiled the first time it is needed;
    ``audio_url`` says it is a presigned audio link rather than a credential."""

    __slots__ = ("value", "anchor", "audio_url", "_pattern")

    def __init__(self, value: str, audio_url: bool = False):
        self.value = value
        self.anchor = _anchor(value)
        self.audio_url = audio_url
        self._pattern: Optional[Pattern[str]] = None

    @property
    def pattern(self) -> Pattern[str]:
        if self._pattern is None:
            self._pattern = _pattern_for(self.value)
        return self._pattern


class _Known:
    """The secrets seen so far, indexed so that adding one, and looking for all of them in
    a text, cost no more with ten thousand secrets than with one, and no more than one
    quick pass over the text however long it is.

    A watch-many of ten thousand calls holds ten thousand conversation tokens.
    One pattern of every form of every secret, compiled anew at each one
    added, took minutes to build; looking for each anchor in turn would make
    every redacted line ten thousand searches.  So each anchor is indexed by
    its first few ``_GRAM``-character pieces, and only every ``_STRIDE``-th
    piece of a text's runs of anchor characters is looked up: an anchor of
    ``_SHORTEST_ANCHOR`` characters or more holds one of those pieces
    wherever it starts.  A hit names the anchor lengths to try from there,
    each one set lookup; only the secrets whose anchor is in the text run
    their pattern.  A run repeated in the text (a word of a transcript
    snapshot) is looked at once.  The runs are cut in C (the text's bytes
    translated, then split), and while there are no more than
    ``_FEW_ANCHORS`` anchors, each is simply looked for in the text instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._too_short: set[str] = set()
        #: Anchor length -> anchor -> the secrets with that anchor.  Readers look up only;
        #: a new length replaces the outer dict, so a reader never sees one half made.
        self.by_length: dict[int, dict[str, tuple[_Secret, ...]]] = {}
        #: A piece of an anchor -> where it lies in anchors: (offset, anchor length) pairs.
        self._pieces: dict[str, tuple[tuple[int, int], ...]] = {}
        #: Secrets whose anchor is shorter than ``_SHORTEST_ANCHOR``: looked for one by one.
        self.unanchored: tuple[_Secret, ...] = ()
        #: Every anchor (of ``_SHORTEST_ANCHOR`` characters or more) while there are no more than
        #: ``_FEW_ANCHORS``, each looked for as it is; None once there are more (the pieces serve).
        self._few: Optional[tuple[str, ...]] = ()

    def add(self, value: str, audio_url: bool = False) -> None:
        """Know ``value`` from now on; a too short credential is reported (a link is only skipped)."""
        with self._lock:
            if value in self._values or value in self._too_short:
                return
            if len(value) < MIN_SECRET_LENGTH:
                self._too_short.add(value)
            else:
                self._values.add(value)
                self._index(_Secret(value, audio_url))
                return
        if audio_url:
            return
        log.warning(
            "a credential of %d character%s is too short to blank from output without blanking "
            "ordinary words: it is not redacted (secrets of %d characters or more are)",
            len(value),
            "" if len(value) == 1 else "s",
            MIN_SECRET_LENGTH,
        )

    def _index(self, secret: _Secret) -> None:
        anchor, length = secret.anchor, len(secret.anchor)
        if length < _SHORTEST_ANCHOR:
            self.unanchored = (*self.unanchored, secret)
            return
        anchors = self.by_length.get(length)
        if anchors is None:
            anchors = {}
            self.by_length = {**self.by_length, length: anchors}
        anchors[anchor] = (*anchors.get(anchor, ()), secret)
        for offset in range(_STRIDE):  # after the anchor itself: a reader finding a piece finds it
            piece = anchor[offset : offset + _GRAM]
            places = self._pieces.get(piece, ())
            if (offset, length) not in places:
                self._pieces[piece] = (*places, (offset, length))
        few = self._few  # after the pieces: a reader that finds it None finds the anchor by them
        if few is not None and anchor not in few:
            self._few = (*few, anchor) if len(few) < _FEW_ANCHORS else None

    def found_in(self, text: str) -> list[_Secret]:
        """The secrets whose anchor is in ``text``, longest first; their patterns may still not match."""
        found = {secret for secret in self.unanchored if secret.anchor in text}
        few, by_length = self._few, self.by_length
        if few is not None:
            for anchor in few:
                if anchor in text:
                    found.update(by_length[len(anchor)][anchor])
        elif self._pieces:
            for run in _runs(text):
                found.update(self._found_in_run(run))
        # one secret may hold another: the longer is blanked first
        return sorted(found, key=lambda secret: (-len(secret.value), secret.value))

    def _found_in_run(self, run: str) -> Iterator[_Secret]:
        """The secrets whose anchor is in ``run``, a run of anchor characters."""
        pieces, by_length = self._pieces, self.by_length
        for position in range(0, len(run) - _GRAM + 1, _STRIDE):
            places = pieces.get(run[position : position + _GRAM])
            if places is not None:
                for offset, length in places:
                    start = position - offset
                    if start >= 0:
                        yield from by_length.get(length, {}).get(run[start : start + length], ())


def _runs(text: str) -> set[str]:
    """The distinct runs of anchor characters in ``text`` long enough to hold an anchor."""
    words = set(text.encode("ascii", "replace").translate(_RUN_BREAKS).decode("ascii").split())
    return {word for word in words if len(word) >= _SHORTEST_ANCHOR}


_known = _Known()


def _forms(value: str) -> set[str]:
    """The ways a secret shows up in text: as is, in a URL, in JSON, in HTML."""
    forms = {
        value,
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
        quote(quote(value, safe=""), safe=""),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(value)[1:-1].replace("/", "\\/"),
        html.escape(value),
    }
    lower_hex = {re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), form) for form in forms}
    return forms | lower_hex


def _anchor(value: str) -> str:
    """The secret's longest run of characters that every encoding above leaves as they are.

    Looking for it first is a fast test for text that holds no form of the
    secret, which is nearly every line; the pattern runs only on the rest.
    A secret made only of other characters has the empty anchor, found everywhere.
    """
    return max(re.findall(f"{_ANCHOR_CHARACTERS}+", value), key=len, default="")


def _pattern_for(value: str) -> Pattern[str]:
    """Every form of the secret, longest first; a short secret only as a whole word."""
    whole_word = len(value) < WHOLE_WORD_BELOW
    return re.compile(
        "|".join(_alternative(form, whole_word) for form in sorted(_forms(value), key=lambda f: -len(f)))
    )


def _alternative(form: str, whole_word: bool) -> str:
    if not whole_word:
        return re.escape(form)
    before = _WORD_BEFORE if form[0].isalnum() else ""
    after = _WORD_AFTER if form[-1].isalnum() else ""
    return before + re.escape(form) + after


class Credential:
    """A secret read afresh on every connection attempt, so rotated tokens are picked up.

    ``source`` is the value itself, or a callable returning it; ``env`` names an
    environment variable to fall back on.  Every value it holds or hands out
    is blanked by ``redact()`` and ``RedactingFilter`` from then on, so a
    plugin keeps its own secrets (a webhook's signing key) out of every log
    by holding them in a ``Credential``.  A value shorter than
    ``MIN_SECRET_LENGTH`` (8) characters is not blanked, since ordinary
    words would be blanked with it; a warning is logged instead.
    """

    __slots__ = ("_source", "_env")

    def __init__(self, source: Source = None, env: Optional[str] = None):
        if isinstance(source, str) and source:
            _known.add(source)
        self._source = source
        self._env = env

    def get(self) -> Optional[str]:
        value: Optional[str]
        if callable(self._source):
            value = self._source()
        elif self._source is not None:
            value = self._source
        else:
            value = os.environ.get(self._env) if self._env else None
        if value:
            _known.add(value)
        return value or None

    def __bool__(self) -> bool:
        return self._source is not None or bool(self._env and os.environ.get(self._env))

    def __repr__(self) -> str:
        return f"Credential({MASK})"


class HiddenText(str):
    """A string that carries a credential (a URL with a token in its query): never shown.

    It is the string for every use but ``repr``, which tracebacks with local
    variables print.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<text, not shown>"


class HiddenLines:
    """Lines that carry a credential (a request's headers): iterable, never shown.

    A list would print its items in a ``repr``, and so in every traceback
    that shows local variables (``pytest -l``, error trackers); this prints
    how many lines it holds and nothing else.
    """

    __slots__ = ("_lines",)

    def __init__(self, lines: Iterable[str]):
        self._lines = tuple(lines)

    def __iter__(self) -> Iterator[str]:
        return iter(self._lines)

    def __len__(self) -> int:
        return len(self._lines)

    def __repr__(self) -> str:
        return f"<{len(self._lines)} lines, not shown>"


def remember_audio_url(url: str) -> None:
    """Blank ``url``, a presigned audio link, wherever ``redact()`` looks, for the life of the process.

    The decoder calls it for each Phonic ``audio_url`` it reads, before the
    snapshot holding it is decoded: from then on the link is blanked in logs
    at any verbosity, exception texts, and any sink's text, whatever path it
    took there (a record's field is blanked by name besides).  The process
    keeps each link: some hundred bytes per turn watched.
    """
    _known.add(url, audio_url=True)


def redact(text: str, *, keep_audio_urls: bool = False) -> str:
    """``text`` with every credential livecall knows of blanked.

    Those are the values of every ``Credential`` made or read so far in this
    process: the clients' tokens and keys, and whatever secrets plugins hold in
    a ``Credential`` of their own; and every Phonic ``audio_url`` (a presigned
    link to a turn's audio) decoded so far, unless ``keep_audio_urls`` is
    true, for output that keeps them on purpose.  Each is blanked as it is and in the forms
    a server echoing it would use: percent-encoded (``quote``,
    ``quote_plus``, upper or lower case hex), JSON-escaped and HTML-escaped.
    A secret of 16 characters or more is blanked wherever it appears; a
    shorter one only as a whole word, never inside a longer word; one
    shorter than ``MIN_SECRET_LENGTH`` (8) is not blanked at all.  Redact
    before cutting text short, or a secret's first characters survive the cut.
    """
    for secret in _known.found_in(text):
        if not (keep_audio_urls and secret.audio_url):
            text = secret.pattern.sub(MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """Blanks credentials in a record's final message, arguments and traceback included.

    Add it to a handler (it then sees every record the handler writes) or to
    a logger that may log a secret, such as an HTTP library's.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# websocket-client's trace (``websocket.enableTrace``) logs the handshake, the
# Authorization header and the URL's query included, to a handler of its own:
# a filter on its logger sees those records whatever handler writes them.
logging.getLogger("websocket").addFilter(RedactingFilter())
