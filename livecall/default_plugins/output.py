"""What ``livecall watch`` prints on stdout: ``--format text`` or ``--format jsonl``.

JSON lines are ASCII (JSON escapes every control character) and keep the
exact words; Phonic's ``audio_url`` links are blanked unless
``--keep-audio-urls`` asks for them.  The text transcript is for a terminal, so whatever a terminal
would act on is shown escaped (``livecall.printable``).

An ordinary plugin.  It adds ``--format``, and when the command configures
it, registers a printer for the run and removes it afterwards.  A library
user's client never configures plugins, so there this one prints nothing.
"""

import argparse
import logging
from datetime import datetime
from typing import Any, Callable, Optional

from livecall import Call, Config, EndReason, ExitStatus, Role, events, hookimpl, printable, redact, to_json

log = logging.getLogger("livecall.output")

_PRINTER = "output.printer"
_WIDTH = max(len(role.value) for role in Role)
_ENDINGS = {
    EndReason.ENDED: "the call ended",
    EndReason.CLOSED: "stopped watching",
    EndReason.AUTH_FAILED: "the credentials were refused",
    EndReason.GAVE_UP: "gave up reconnecting",
    EndReason.ERROR: "the watch failed",
}


class _Printer:
    """Writes whole lines, flushed one by one so a pipe's reader sees them live.

    A reader that went away (``| head``) stops the printing quietly; stdout
    that cannot be written (a full disk) stops it too, and the run fails
    with one line saying why.  Either way the watch goes on for the other
    plugins.
    """

    def __init__(self, config: Config):
        self._config = config
        self._out = config.stdout
        self._closed = False

    def write(self, line: str) -> None:
        if self._closed:
            return
        text = self.shown(line) + "\n"
        try:
            try:
                self._out.write(text)
            except UnicodeEncodeError:  # a terminal that cannot show every script
                encoding = self._out.encoding
                self._out.write(text.encode(encoding, "backslashreplace").decode(encoding))
            self._out.flush()
        except BrokenPipeError:  # `livecall watch ... | head`: the reader has all it wants
            self._closed = True
            log.info("stdout was closed; printing stops, the watch goes on")
        except OSError as error:
            self._closed = True
            self._config.fail(
                ExitStatus.FAILURE, f"cannot write to stdout: {error.strerror or error}; printing stopped"
            )

    def shown(self, line: str) -> str:
        """The line as written: credentials blanked."""
        return redact(line)


class JsonLines(_Printer):
    """One JSON object per event: ``livecall.to_json``, the documented contract.

    With ``--keep-audio-urls`` the presigned audio links stay in the records,
    and ``redact()`` leaves them too: the user asked for them, on their own
    terminal or file.  Credentials are blanked all the same.
    """

    def __init__(self, config: Config):
        super().__init__(config)
        self._keep_audio_urls = bool(getattr(config.options, "keep_audio_urls", False))

    @hookimpl
    def livecall_event(self, call: Call, event: events.Event) -> None:
        self.write(to_json(call, event, keep_audio_urls=self._keep_audio_urls))

    def shown(self, line: str) -> str:
        return redact(line, keep_audio_urls=self._keep_audio_urls)


class TextTranscript(_Printer):
    """A live transcript for a person: time, speaker, words; the call's milestones between."""

    def __init__(self, config: Config):
        super().__init__(config)
        self._joining = bool(getattr(config.options, "join", False))
        #: Several calls' lines interleave (``watch-many``): each line starts with its call's id.
        self._interleaved = bool(getattr(config.options, "interleaved", False))
        self._callers: dict[str, Optional[str]] = {}  # per call: interleaved calls must not mix

    def shown(self, line: str) -> str:
        """Credentials blanked, and what a terminal would act on escaped: one event, one line."""
        return printable(redact(line))

    def _line(self, call: Call, text: str) -> None:
        self.write(f"[{call.id}] {text}" if self._interleaved else text)

    @hookimpl
    def livecall_call_start(self, call: Call) -> None:
        self._callers[call.id] = None
        self._line(call, f"== {call.provider} call {call.id}")

    @hookimpl
    def livecall_event(self, call: Call, event: events.Event) -> None:
        render = _RENDERERS.get(type(event))
        text = render(self, call, event) if render is not None else None
        if text:
            self._line(call, f"{_clock(event.received_at)}  {text}")

    @hookimpl
    def livecall_call_end(self, call: Call, reason: EndReason) -> None:
        self._callers.pop(call.id, None)
        self._line(call, f"== {call.provider} call {call.id}: {_ENDINGS.get(reason, reason)}")

    def _call_started(self, call: Call, event: events.CallStarted) -> str:
        self._callers[call.id] = event.phone
        return _note(f"call started, caller {event.phone}")

    def _snapshot(self, call: Call, event: events.ConversationUpdated) -> Optional[str]:
        if call.phone is None or call.phone == self._callers.get(call.id):
            return None  # the transcript lines derived from it say the rest
        self._callers[call.id] = call.phone
        return _note(f"{'calling' if call.direction == 'outbound' else 'caller'} {call.phone}")

    def _transcript(self, call: Call, event: events.Transcript) -> str:
        mark = "  (redacted)" if event.revised and event.redacted else "  (revised)" if event.revised else ""
        return f"{str(event.role):<{_WIDTH}}  {event.text}{mark}"

    def _tool_call(self, call: Call, event: events.ToolCall) -> str:
        outcome = "" if event.status_code is None else f" -> {event.status_code}"
        if event.error is not None:
            outcome = f" -> error: {event.error}"
        return _note(f"tool call {event.name}{outcome}")

    def _ack(self, call: Call, event: events.Ack) -> str:
        return _note("joined the call" if self._joining else f"the server acknowledged {event.ack_id}")

    def _gap(self, call: Call, event: events.Gap) -> str:
        """The outage's times and cause, and whether the provider sends what was missed again."""
        resent = "sends what was missed again" if event.replayed else "does not resend what was said"
        lost, reopened = _clock(event.lost_at), _clock(event.reopened_at)
        return _alert(
            f"gap: lost {lost}, reopened {reopened} ({event.reason}); {call.provider.capitalize()} {resent}"
        )


def _note(text: str) -> str:
    return f"{'--':<{_WIDTH}}  {text}"


def _alert(text: str) -> str:
    return f"{'!!':<{_WIDTH}}  {text}"


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


_RENDERERS: dict[type, Callable[[TextTranscript, Call, Any], Optional[str]]] = {
    events.CallStarted: TextTranscript._call_started,
    events.ConversationUpdated: TextTranscript._snapshot,
    events.Transcript: TextTranscript._transcript,
    events.ToolCall: TextTranscript._tool_call,
    events.Ack: TextTranscript._ack,
    events.ScreeningEnded: lambda self, call, event: _note(f"screening ended: {event.message}"),
    events.CallEnded: lambda self, call, event: _note("call ended"),
    events.ConversationEnded: lambda self, call, event: _note("conversation ended"),
    events.ServerError: lambda self, call, event: _alert(f"server error: {event.message}"),
    events.Reconnecting: lambda self, call, event: _alert(
        f"connection lost ({event.reason}); reconnecting in {event.delay:.1f} s (attempt {event.attempt})"
    ),
    events.Gap: TextTranscript._gap,
    events.DecodeError: lambda self, call, event: _alert(f"undecodable message skipped: {event.reason}"),
    events.UnknownMessage: lambda self, call, event: _note(f"unknown message type {event.type!r}"),
}

FORMATS = {"text": TextTranscript, "jsonl": JsonLines}


@hookimpl
def livecall_addoption(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=list(FORMATS),
        default="text",
        help="text: a live transcript to read; jsonl: one JSON object per event (default: text)",
    )
    parser.add_argument(
        "--keep-audio-urls",
        action="store_true",
        help="with --format jsonl, print Phonic's audio_url links as sent; each is a presigned link "
        "that lets anyone holding it hear its turn for a day, so by default they read ***",
    )


@hookimpl
def livecall_configure(config: Config) -> None:
    name = config.output_format  # None with --quiet: the printer stays out, other plugins run
    if name is not None:
        config.register(FORMATS[name](config), name=_PRINTER)
