"""POST every event of a watched call to a webhook, signed, retried, nothing lost.

``livecall watch ... --webhook-url URL`` sends each event's JSON-lines record
as its own request; whatever cannot be delivered ends up in a dead-letter
file that ``livecall webhook-replay FILE --webhook-url URL`` sends again.
Library users register a ``WebhookForwarder`` and ``close()`` it when done.
"""

import argparse
import contextlib
import logging
import os
import shlex
import signal
import threading
from collections.abc import Iterator
from typing import Any

import livecall
import livecall.observability

from ._dead_letter import DEFAULT_PATH as DEFAULT_DEAD_LETTER
from ._files import NotSafe
from ._forwarder import DEFAULT_QUEUE_BYTES, WebhookForwarder
from ._replay import ReplayResult, replay
from ._sender import Failure, Sender, safe_url
from ._signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, SigningKey

__all__ = [
    "DEFAULT_DEAD_LETTER",
    "ID_HEADER",
    "SECRET_ENV",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Failure",
    "ReplayResult",
    "Sender",
    "SigningKey",
    "WebhookForwarder",
    "replay",
    "safe_url",
]

SECRET_ENV = "LIVECALL_WEBHOOK_SECRET"
log = logging.getLogger("livecall.webhook")
_REGISTERED_AS = "webhook-forwarder"


@livecall.hookimpl
def livecall_addoption(parser):
    group = parser.add_argument_group("webhook (livecall-webhook)")
    group.add_argument("--webhook-url", metavar="URL", help="POST every event as JSON to URL")
    _add_delivery_options(group)
    group.add_argument(
        "--webhook-queue-size",
        metavar="N",
        type=int,
        default=1000,
        help="events waiting to be sent before more go straight to the dead-letter file "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--webhook-queue-bytes",
        metavar="N",
        type=int,
        default=DEFAULT_QUEUE_BYTES,
        help="bytes of events waiting to be sent before more go straight to the dead-letter file "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--webhook-drain-timeout",
        metavar="S",
        type=float,
        default=30.0,
        help="at exit, wait this long for pending deliveries; a second Ctrl-C or SIGTERM "
        "stops waiting (default: %(default)s)",
    )
    group.add_argument(
        "--webhook-dead-letter",
        metavar="PATH",
        default=DEFAULT_DEAD_LETTER,
        help="append undelivered events to PATH, one JSON line each (default: %(default)s)",
    )
    group.add_argument(
        "--webhook-keep-words",
        action="store_true",
        help="keep the words of Phonic calls whose owner asked for zero data retention in the spool and "
        "the dead-letter file too; by default only the requests carry them",
    )


@livecall.hookimpl
def livecall_register_commands(subparsers):
    command = subparsers.add_parser(
        "webhook-replay",
        help="send a webhook dead-letter file again",
        description="Send the events of a dead-letter file in order; the file keeps only "
        "those still undelivered and is removed once empty.  Exit status 0 when all "
        "were delivered, 5 when some are left.",
    )
    command.add_argument("file", metavar="FILE", help="the dead-letter file")
    group = command.add_argument_group("webhook")
    group.add_argument("--webhook-url", metavar="URL", required=True, help="POST the events to URL")
    _add_delivery_options(group)
    command.set_defaults(func=replay_command)


@livecall.hookimpl
def livecall_configure(config):
    options = config.options
    if getattr(options, "webhook_url", None):
        directory = os.path.dirname(options.webhook_dead_letter) or "."
        if os.path.islink(options.webhook_dead_letter):
            raise livecall.ConfigurationError(
                f"--webhook-dead-letter: {options.webhook_dead_letter!r} is a symbolic link; "
                "name the file itself"
            )
        if not os.path.isdir(directory):
            raise livecall.ConfigurationError(
                f"--webhook-dead-letter: the directory {directory!r} does not exist"
            )
        if not 0 <= options.webhook_drain_timeout < float("inf"):  # nan too
            raise livecall.ConfigurationError(
                "--webhook-drain-timeout must be a number of seconds, 0 or more"
            )
        sender = _sender(options)
        try:
            forwarder = WebhookForwarder(
                sender,
                options.webhook_dead_letter,
                queue_size=options.webhook_queue_size,
                queue_bytes=options.webhook_queue_bytes,
                keep_words=options.webhook_keep_words,
            )
        except livecall.ConfigurationError:
            sender.close()
            raise
        livecall.observability.add_metrics_source(forwarder.metrics)
        config.register(forwarder, name=_REGISTERED_AS, close=lambda: _finish(config, forwarder))


def _finish(config, forwarder: WebhookForwarder) -> None:
    """Drain what is queued; whatever is left undelivered makes the run incomplete."""
    timeout = config.options.webhook_drain_timeout
    with _signals_cut_short(forwarder):
        if forwarder.pending:
            log.info(
                "waiting up to %g s for %d webhook events; Ctrl-C, SIGTERM or SIGHUP stops waiting",
                timeout,
                forwarder.pending,
            )
        forwarder.close(timeout)
    livecall.observability.remove_metrics_source(forwarder.metrics)
    dead_letter = forwarder.dead_letter
    if dead_letter.written:
        cut = " (the wait for them was cut short)" if forwarder.was_cut_short else ""
        config.fail(
            livecall.ExitStatus.INCOMPLETE,
            f"webhook: {dead_letter.written} events undelivered{cut}, written to {dead_letter.path}; "
            f"resend with: livecall webhook-replay {shlex.quote(dead_letter.path)} --webhook-url URL",
        )
    if dead_letter.unwritten:
        config.fail(
            livecall.ExitStatus.INCOMPLETE,
            f"webhook: {dead_letter.unwritten} undelivered events could not be written to "
            f"{dead_letter.path} either; they are lost (the log says why)",
        )


#: The signals that end a run; during the drain they end the wait instead of waiting for it.
_STOPPING = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _signals_cut_short(forwarder: WebhookForwarder) -> Iterator[None]:
    """While the drain waits, a stopping signal cuts it short, then goes on to livecall's handler.

    Only a signal livecall handles is taken over (the handler is a Python
    function): the command's own exit status for it stays as it was.  Signal
    handlers can only be set from the main thread; elsewhere the drain just
    runs its course.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in _STOPPING}
    taken = {signum: handler for signum, handler in previous.items() if callable(handler)}

    def cut_short(signum: int, frame: Any) -> None:
        forwarder.cut_short()
        taken[signum](signum, frame)

    for signum in taken:
        signal.signal(signum, cut_short)
    try:
        yield
    finally:
        for signum, handler in taken.items():
            signal.signal(signum, handler)


def replay_command(config) -> int:
    """``livecall webhook-replay``: 0 when everything went, 5 when the file still holds events."""
    options = config.options
    sender = _sender(options)
    try:
        result = replay(options.file, sender)
    except FileNotFoundError:
        raise livecall.ConfigurationError(f"no dead-letter file at {options.file!r}") from None
    except NotSafe as unsafe:
        raise livecall.ConfigurationError(f"webhook-replay refuses {unsafe}") from None
    finally:
        sender.close()
    left = f", {result.kept} kept in {options.file}" if result.kept else f"; {options.file} removed"
    refused = f" ({result.refused} refused: their seal does not check)" if result.refused else ""
    config.stdout.write(f"webhook-replay: {result.delivered} delivered to {sender.safe_url}{left}{refused}\n")
    return livecall.ExitStatus.INCOMPLETE if result.kept else livecall.ExitStatus.OK


def _add_delivery_options(group) -> None:
    """The options of one delivery, shared by watching and replaying."""
    group.add_argument(
        "--webhook-secret",
        metavar="S",
        help="sign each request as Standard Webhooks do, and seal the dead-letter file's lines; "
        f"whsec_ + base64, or any string (default: ${SECRET_ENV})",
    )
    group.add_argument(
        "--webhook-timeout",
        metavar="S",
        type=float,
        default=10.0,
        help="seconds one attempt may take, connecting and answering included (default: %(default)s)",
    )
    group.add_argument(
        "--webhook-retries",
        metavar="N",
        type=int,
        default=5,
        help="retries of one event after a connection error, timeout, 429 or 5xx (default: %(default)s)",
    )
    group.add_argument(
        "--webhook-retry-time",
        metavar="S",
        type=float,
        default=60.0,
        help="seconds one event may spend on retries (default: %(default)s)",
    )


def _sender(options: argparse.Namespace) -> Sender:
    return Sender(
        options.webhook_url,
        options.webhook_secret or os.environ.get(SECRET_ENV) or None,
        timeout=options.webhook_timeout,
        retries=options.webhook_retries,
        retry_time=options.webhook_retry_time,
    )
