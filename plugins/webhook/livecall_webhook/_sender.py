"""One body to one URL: signing, the POST, and the retry policy.

Messages never show the secret or the URL's credentials: requests puts the
full URL in its exception messages, so failures are described from the
socket error underneath instead.  Nothing the target says is trusted: its
answer's body is read up to a cap and thrown away, its reason phrase is
cut to printable ASCII, and each attempt ends at a total deadline however
slowly the target answers.
"""

import email.utils
import logging
import math
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Optional
from urllib.parse import urlsplit, urlunsplit

import attrs
import requests

import livecall

from ._deadline import Deadline, enforce_deadlines
from ._signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, SigningKey, new_message_id

__all__ = ["Failure", "Sender", "safe_url"]

USER_AGENT = "livecall-webhook"
#: The W3C Trace Context header carrying the trace of the event a request sends.
TRACEPARENT_HEADER = "traceparent"
#: How much of an answer's body is read (and ignored) before the connection is dropped instead.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
_CHUNK = 1024
_REASON_LENGTH = 60


def safe_url(url: str) -> str:
    """``url`` fit for logs: without user, password, query or fragment, where tokens hide."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@attrs.frozen
class Failure:
    """Why a body was not delivered; ``permanent`` when sending it again cannot help."""

    reason: str
    permanent: bool
    retry_after: Optional[float] = None


class Sender:
    """POSTs a body until it is accepted (2xx) or the retry budget is spent.

    Connection errors, timeouts, 429 and 5xx are retried after a capped,
    jittered exponential backoff, or after the server's ``Retry-After``; at
    most ``retries`` times and not past ``retry_time`` seconds from the first
    try.  Other statuses (4xx, and 3xx: redirects are not followed) are
    permanent failures.  Each attempt, connecting included, ends after
    ``timeout`` seconds, and at most ``max_response_bytes`` of the answer
    are read.  With a ``secret`` every request carries the Standard Webhooks
    headers (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
    Not thread-safe: one sender per thread; ``close()`` it when done.

    ``clock`` (seconds, monotonic) and ``wait`` (``wait(stop, delay)``: pause
    ``delay`` seconds unless ``stop`` is set first, return whether it was) are
    the retry policy's time; a test passes fake ones to play a long outage in
    an instant.
    """

    def __init__(
        self,
        url: str,
        secret: Optional[str] = None,
        *,
        timeout: float = 10.0,
        retries: int = 5,
        retry_time: float = 60.0,
        backoff: livecall.Backoff = livecall.Backoff(0.5, 30.0),
        session: Optional[requests.Session] = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[threading.Event, float], bool] = threading.Event.wait,
    ):
        try:
            self.safe_url = safe_url(url)
        except ValueError:  # a bad port or IPv6 address; the message would quote the URL
            raise livecall.ConfigurationError("the webhook URL is malformed") from None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise livecall.ConfigurationError(
                f"the webhook URL must start with http:// or https:// and name a host, not {self.safe_url!r}"
            )
        if not (0 < timeout < math.inf and retry_time > 0 and retries >= 0 and max_response_bytes >= 0):
            raise livecall.ConfigurationError(
                "the webhook timeout and retry time must be positive, the retries 0 or more"
            )
        for value in (parts.query, parts.password):
            if value:
                livecall.Credential(value)  # from now on blanked wherever livecall redacts
        self._url = url
        #: Signs requests and seals dead-letter lines; None without a secret.
        self.key = SigningKey(secret) if secret else None
        _redact_loggers()
        self.timeout = timeout
        self.retries = retries
        self.retry_time = retry_time
        self.backoff = backoff
        self.max_response_bytes = max_response_bytes
        self._session = enforce_deadlines(session or requests.Session())
        self._clock = clock
        self._wait = wait
        #: Attempts that failed and were tried again (written by the sending thread only).
        self.retried = 0

    def send(
        self,
        body: bytes,
        stop: Optional[threading.Event] = None,
        *,
        message_id: Optional[str] = None,
        traceparent: Optional[str] = None,
    ) -> Optional[Failure]:
        """Deliver ``body``; None once delivered, else the last failure.

        Every try carries the same ``message_id`` (a new one if not given),
        so that a receiver can tell a retried or replayed event from a new
        one, and the same W3C ``traceparent`` header if one is given (the
        event's trace, ``livecall.observability.traceparent()``).  Setting
        ``stop`` ends the waiting between attempts.
        """
        stop = stop or threading.Event()
        message_id = message_id or new_message_id()
        deadline = self._clock() + self.retry_time
        attempt = 0
        while True:
            attempt += 1
            failure = self._attempt(message_id, body, traceparent)
            if failure is None or failure.permanent:
                return failure
            if attempt > self.retries:
                return _giving_up(failure, f"{self.retries} retries used")
            delay = self.backoff.delay(attempt) if failure.retry_after is None else failure.retry_after
            if self._clock() + delay > deadline:
                return _giving_up(
                    failure, f"the next try in {delay:.1f} s would pass the {self.retry_time:g} s budget"
                )
            if self._wait(stop, delay):
                return _giving_up(failure, "stopped retrying at exit")
            self.retried += 1

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"<Sender {self.safe_url} signed={self.key is not None}>"

    def _headers(self, message_id: str, body: bytes, traceparent: Optional[str] = None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            ID_HEADER: message_id,
        }
        if traceparent is not None:
            headers[TRACEPARENT_HEADER] = traceparent
        if self.key is not None:
            timestamp = int(time.time())
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = self.key.sign(message_id, timestamp, body)
        return headers

    def _attempt(self, message_id: str, body: bytes, traceparent: Optional[str] = None) -> Optional[Failure]:
        headers = self._headers(message_id, body, traceparent)
        with Deadline(self.timeout) as deadline:
            try:
                response = self._session.post(
                    self._url,
                    data=body,
                    headers=headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                    stream=True,
                )
            except requests.RequestException as error:
                if deadline.expired:
                    return Failure(f"no full answer within {self.timeout:g} s", permanent=False)
                return _failure(error, self.timeout)
            try:
                _read_capped(response, self.max_response_bytes)
            except requests.RequestException:
                pass  # the status is the answer; a body cut short only costs the connection
            finally:
                response.close()
        status, reason = response.status_code, _printable(response.reason)
        if 200 <= status < 300:
            return None
        reason = f"HTTP {status} {reason}".rstrip()
        if status == 429 or status >= 500:
            return Failure(
                reason, permanent=False, retry_after=_retry_after(response.headers.get("Retry-After"))
            )
        return Failure(reason, permanent=True)


def _failure(error: requests.RequestException, timeout: float) -> Failure:
    if isinstance(error, requests.Timeout):
        return Failure(f"no answer within {timeout:g} s", permanent=False)
    if isinstance(error, requests.exceptions.SSLError):
        return Failure(f"TLS failed: {_socket_error(error)}", permanent=True)
    if isinstance(error, requests.ConnectionError):
        return Failure(f"could not connect: {_socket_error(error)}", permanent=False)
    return Failure(f"could not send: {type(error).__name__}", permanent=True)


def _read_capped(response: requests.Response, limit: int) -> None:
    """Read the answer's body and drop it; past ``limit`` bytes, stop (closing drops the connection).

    A body read to its end leaves the connection fit for the next request.
    """
    read = 0
    for chunk in response.iter_content(_CHUNK):
        read += len(chunk)
        if read > limit:
            return


def _printable(text: Optional[str]) -> str:
    """The target's reason phrase, fit for a log line: printable ASCII only, and short."""
    return "".join(c for c in (text or "") if " " <= c <= "~")[:_REASON_LENGTH]


def _giving_up(failure: Failure, why: str) -> Failure:
    return attrs.evolve(failure, reason=f"{failure.reason} ({why})")


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _socket_error(error: BaseException) -> str:
    """The OS's words for a failed connection ("Connection refused"), found in the cause chain."""
    pending: list[BaseException] = [error]
    seen = set()
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        linked: tuple[object, ...] = (
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
        )
        pending.extend(e for e in linked + current.args if isinstance(e, BaseException))
    return type(error).__name__


#: Loggers whose records may carry the URL: ours, and urllib3's, which logs each
#: request's path and query at debug level (with ``-vv``, a token in the query
#: would reach stderr).
_LOGGERS = (
    "livecall.webhook",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.poolmanager",
    "urllib3.util.retry",
)
_REDACTING = livecall.RedactingFilter()


def _redact_loggers() -> None:
    """Blank credentials in every record those loggers make, before any handler sees it.

    Adding the same filter again is a no-op, and it stays for the process's
    life: once a secret was known, a record carrying it may come at any time.
    """
    for name in _LOGGERS:
        logging.getLogger(name).addFilter(_REDACTING)
