"""Every event to the standard ``logging`` system, for apps that already collect logs.

Records go to the logger ``livecall.events.<kind>`` (``livecall.events.transcript``,
``livecall.events.reconnecting``...) and carry ``call_id``, ``event`` and
``provider`` attributes, so the handlers an application already has (files,
syslog, JSON formatters) receive them and can filter on them.  Library users
register an ``EventLogger``; ``livecall watch --log-file PATH`` adds a handler.

Credentials are blanked in every record.  The file and stderr handlers the
command line adds write one line per record, with control characters and
the like escaped (``livecall.PrintableFormatter``): a newline in a
transcript cannot forge a record.  The log file is created readable by its
owner only, since it holds transcripts.
"""

import io
import logging
import logging.handlers
import sys
from typing import Any, Callable, Optional

import livecall

__all__ = ["FORMAT", "LOGGER_NAME", "EventLogger"]

LOGGER_NAME = "livecall.events"
#: The format of ``--log-file`` and of ``--log-level`` alone (to stderr).
FORMAT = "%(asctime)s %(levelname)s %(provider)s %(call_id)s %(event)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_REGISTERED_AS = "event-logger"

_Describe = tuple[int, str, Callable[[Any], tuple[Any, ...]]]


def _tool_call(event: livecall.ToolCall) -> tuple[Any, ...]:
    """A tool call by its name (its id when the shape has none) and how it went.

    Never its arguments or result: they are the tool's business and may hold
    the credentials of the tool's own service.
    """
    code = event.status_code
    if isinstance(code, float) and code.is_integer():
        code = int(code)  # JSON numbers arrive as floats: "status 200", not "status 200.0"
    if event.timed_out is True:
        outcome = "timed out"
    elif event.error is not None:
        outcome = f"failed: {event.error}"
    elif code is not None:
        outcome = f"status {code}"
    else:
        outcome = "pending"
    named = event.name if event.name is not None else event.tool_call_id
    return (named, " (revised)" if event.revised else "", outcome)


#: How each event reads in a log: its level, a message template and the template's arguments.
_DESCRIPTIONS: dict[type, _Describe] = {
    livecall.CallStarted: (logging.INFO, "call from %s started", lambda e: (e.phone,)),
    livecall.Transcript: (logging.INFO, "%s: %s", lambda e: (e.role, e.text)),
    livecall.ScreeningEnded: (logging.INFO, "screening ended: %s", lambda e: (e.message,)),
    livecall.CallEnded: (logging.INFO, "call ended", lambda e: ()),
    livecall.Ack: (logging.INFO, "request %s acknowledged", lambda e: (e.ack_id,)),
    livecall.ConversationUpdated: (
        logging.INFO,
        "conversation updated, items: %d",
        lambda e: (len(e.conversation.items),),
    ),
    livecall.ConversationEnded: (logging.INFO, "conversation ended", lambda e: ()),
    livecall.ToolCall: (logging.INFO, "tool call %s%s: %s", _tool_call),
    livecall.ServerError: (logging.ERROR, "server error: %s", lambda e: (e.message,)),
    livecall.DecodeError: (logging.WARNING, "undecodable frame: %s", lambda e: (e.reason,)),
    livecall.UnknownMessage: (logging.WARNING, "unknown message type %r", lambda e: (e.type,)),
    livecall.Reconnecting: (
        logging.WARNING,
        "connection lost (%s); reconnecting in %.1f s, attempt %d",
        lambda e: (e.reason, e.delay, e.attempt),
    ),
    livecall.Gap: (
        logging.WARNING,
        "gap: lost %s, reopened %s (%s); %s",
        lambda e: (
            e.lost_at.isoformat(),
            e.reopened_at.isoformat(),
            e.reason,
            "the provider sends what was missed again" if e.replayed else "what was said meanwhile is lost",
        ),
    ),
}
_OTHER: _Describe = (logging.INFO, "%s", lambda e: (e.kind,))


@livecall.hookimpl
def livecall_addoption(parser):
    group = parser.add_argument_group("logging (livecall-logging)")
    group.add_argument("--log-file", metavar="PATH", help="append every event to PATH (never truncated)")
    group.add_argument(
        "--log-level",
        type=str.upper,
        choices=LEVELS,
        help="lowest level of events to log (default INFO); without --log-file they go to stderr",
    )
    group.add_argument(
        "--log-max-bytes",
        type=int,
        metavar="N",
        help="rotate --log-file when it would pass N bytes, keeping --log-backups old files",
    )
    group.add_argument(
        "--log-backups", type=int, default=5, metavar="N", help="rotated files kept (default 5)"
    )


@livecall.hookimpl
def livecall_configure(config):
    options = config.options
    path = getattr(options, "log_file", None)
    level = getattr(options, "log_level", None)
    max_bytes = getattr(options, "log_max_bytes", None)
    if path or level or max_bytes is not None:
        handler = _handler(path, max_bytes, getattr(options, "log_backups", 5))
        event_logger = EventLogger(handler, level or "INFO")
        config.register(event_logger, name=_REGISTERED_AS, close=event_logger.close)


def _handler(path: Optional[str], max_bytes: Optional[int], backups: int) -> logging.Handler:
    """A handler that appends to ``path`` (rotating past ``max_bytes``), or stderr without a path."""
    if max_bytes is not None and (not path or max_bytes <= 0 or backups < 1):
        raise livecall.ConfigurationError(
            "--log-max-bytes needs --log-file, a positive size and --log-backups of 1 or more"
        )
    try:
        if not path:
            handler: logging.Handler = logging.StreamHandler(sys.stderr)
        elif max_bytes:
            handler = _PrivateRotatingFileHandler(
                path, mode="a", maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
            )
        else:
            handler = _PrivateFileHandler(path, mode="a", encoding="utf-8")
    except OSError as error:
        raise livecall.ConfigurationError(
            f"cannot open log file {path!r}: {error.strerror or error}"
        ) from None
    handler.addFilter(livecall.RedactingFilter())
    handler.setFormatter(livecall.PrintableFormatter(FORMAT))
    return handler


class _PrivateFileHandler(logging.FileHandler):
    """A log file holds transcripts, personal data: created readable by its owner only."""

    def _open(self) -> io.TextIOWrapper:
        return open(
            self.baseFilename, "a", encoding=self.encoding, errors=self.errors, opener=livecall.owner_only
        )


class _PrivateRotatingFileHandler(_PrivateFileHandler, logging.handlers.RotatingFileHandler):
    """The rotating log file, and each one a rotation starts, readable by its owner only."""


class EventLogger:
    """Logs every event of the calls it is registered for.

    Levels: transcripts and ordinary events INFO; reconnects, gaps,
    undecodable frames and unknown messages WARNING; server errors and failures (a
    plugin that raised, a watch that could not go on) ERROR.  Records
    propagate to the application's handlers as usual.

    Given a ``handler`` (the command line's ``--log-file``, or stderr for
    ``--log-level`` alone) the plugin is the destination instead: the
    handler is attached to the ``livecall.events`` logger, set to
    ``level``, and records stop there until ``close()``, so that the
    command's own stderr stays as quiet as ``-v`` asks.
    """

    def __init__(self, handler: Optional[logging.Handler] = None, level: Optional[str] = None):
        self._base = logging.getLogger(LOGGER_NAME)
        self._loggers: dict[str, logging.Logger] = {}
        self._handler = handler
        self._before = (self._base.level, self._base.propagate)
        if level is not None:
            self._base.setLevel(level)
        if handler is not None:
            self._base.addHandler(handler)
            self._base.propagate = False

    @livecall.hookimpl
    def livecall_call_start(self, call):
        self._log(call, "call_start", logging.INFO, "watching %s call %s", call.provider, call.id)

    @livecall.hookimpl
    def livecall_event(self, call, event):
        level, template, arguments = _DESCRIPTIONS.get(type(event), _OTHER)
        if self._logger(event.kind).isEnabledFor(level):
            self._log(call, event.kind, level, template, *arguments(event))

    @livecall.hookimpl
    def livecall_error(self, call, error):
        self._log(call, "failure", logging.ERROR, "%s: %s", type(error).__name__, error)

    @livecall.hookimpl
    def livecall_call_end(self, call, reason):
        self._log(call, "call_end", logging.INFO, "watch over: %s", reason)

    def close(self) -> None:
        """Detach and close the handler; the logger's level and propagation are as they were."""
        if self._handler is not None:
            self._base.removeHandler(self._handler)
            self._handler.close()
            self._handler = None
        level, self._base.propagate = self._before
        self._base.setLevel(level)  # not .level: setLevel clears the loggers' cached levels

    def _log(self, call: livecall.Call, name: str, level: int, template: str, *arguments: Any) -> None:
        extra = {"call_id": call.id, "event": name, "provider": call.provider}
        self._logger(name).log(level, template, *map(_redacted, arguments), extra=extra)

    def _logger(self, name: str) -> logging.Logger:
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = logging.getLogger(f"{LOGGER_NAME}.{name}")
        return logger


def _redacted(argument: Any) -> Any:
    """A record's argument with credentials blanked, for the application's handlers too.

    A server may echo a token in an error's text; numbers stay numbers for ``%d``.
    """
    return argument if isinstance(argument, (int, float)) else livecall.redact(str(argument))
