"""POST every event of a watched call to a webhook, signed, retried, nothing lost.

``livecall watch ... --webhook-url URL`` sends each event's JSON-lines record
as its own request; whatever cannot be delivered ends up in a dead-letter
file that ``livecall webhook-replay FILE --webhook-url URL`` sends again.
Library users register a ``WebhookForwarder`` and ``close()`` it when done.
"""

import argparse
import os
import shlex

import livecall

from ._dead_letter import DEFAULT_PATH as DEFAULT_DEAD_LETTER
from ._forwarder import WebhookForwarder
from ._replay import ReplayResult, replay
from ._sender import SIGNATURE_HEADER, Failure, Sender, safe_url, sign

__all__ = [
    "DEFAULT_DEAD_LETTER",
    "SECRET_ENV",
    "SIGNATURE_HEADER",
    "Failure",
    "ReplayResult",
    "Sender",
    "WebhookForwarder",
    "replay",
    "safe_url",
    "sign",
]

SECRET_ENV = "LIVECALL_WEBHOOK_SECRET"
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
        "--webhook-drain-timeout",
        metavar="S",
        type=float,
        default=30.0,
        help="at exit, wait this long for pending deliveries (default: %(default)s)",
    )
    group.add_argument(
        "--webhook-dead-letter",
        metavar="PATH",
        default=DEFAULT_DEAD_LETTER,
        help="append undelivered events to PATH, one JSON line each (default: %(default)s)",
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
                sender, options.webhook_dead_letter, queue_size=options.webhook_queue_size
            )
        except livecall.ConfigurationError:
            sender.close()
            raise
        config.register(forwarder, name=_REGISTERED_AS, close=lambda: _finish(config, forwarder))


def _finish(config, forwarder: WebhookForwarder) -> None:
    """Drain what is queued; whatever is left undelivered makes the run incomplete."""
    forwarder.close(config.options.webhook_drain_timeout)
    dead_letter = forwarder.dead_letter
    if dead_letter.written:
        config.fail(
            livecall.ExitStatus.INCOMPLETE,
            f"webhook: {dead_letter.written} events undelivered, written to {dead_letter.path}; "
            f"resend with: livecall webhook-replay {shlex.quote(dead_letter.path)} --webhook-url URL",
        )
    if dead_letter.unwritten:
        config.fail(
            livecall.ExitStatus.INCOMPLETE,
            f"webhook: {dead_letter.unwritten} undelivered events could not be written to "
            f"{dead_letter.path} either; they are lost (the log says why)",
        )


def replay_command(config) -> int:
    """``livecall webhook-replay``: 0 when everything went, 5 when the file still holds events."""
    options = config.options
    if not os.path.isfile(options.file):
        raise livecall.ConfigurationError(f"no dead-letter file at {options.file!r}")
    sender = _sender(options)
    try:
        result = replay(options.file, sender)
    finally:
        sender.close()
    left = f", {result.kept} kept in {options.file}" if result.kept else f"; {options.file} removed"
    config.stdout.write(f"webhook-replay: {result.delivered} delivered to {sender.safe_url}{left}\n")
    return livecall.ExitStatus.INCOMPLETE if result.kept else livecall.ExitStatus.OK


def _add_delivery_options(group) -> None:
    """The options of one delivery, shared by watching and replaying."""
    group.add_argument(
        "--webhook-secret",
        metavar="S",
        help=f"sign each body with HMAC-SHA256 in {SIGNATURE_HEADER} (default: ${SECRET_ENV})",
    )
    group.add_argument(
        "--webhook-timeout",
        metavar="S",
        type=float,
        default=10.0,
        help="seconds to wait for the target to connect, and again to answer (default: %(default)s)",
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
