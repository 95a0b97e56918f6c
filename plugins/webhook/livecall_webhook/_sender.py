"""One body to one URL: signing, the POST, and the retry policy.

Messages never show the secret or the URL's credentials: requests puts the
full URL in its exception messages, so failures are described from the
socket error underneath instead.
"""

import email.utils
import hashlib
import hmac
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Optional
from urllib.parse import urlsplit, urlunsplit

import attrs
import requests

import livecall

__all__ = ["SIGNATURE_HEADER", "Failure", "Sender", "safe_url", "sign"]

SIGNATURE_HEADER = "X-Livecall-Signature"
USER_AGENT = "livecall-webhook"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of ``body``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


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
    permanent failures.  With a ``secret`` every request carries
    ``X-Livecall-Signature``.  Not thread-safe: one sender per thread;
    ``close()`` it when done.

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
        if not (timeout > 0 and retry_time > 0 and retries >= 0):
            raise livecall.ConfigurationError(
                "the webhook timeout and retry time must be positive, the retries 0 or more"
            )
        self._url = url
        self._secret = secret
        for value in (parts.query, parts.password, secret):
            if value:
                livecall.Credential(value)  # from now on blanked wherever livecall redacts
        _redact_loggers()
        self.timeout = timeout
        self.retries = retries
        self.retry_time = retry_time
        self.backoff = backoff
        self._session = session or requests.Session()
        self._clock = clock
        self._wait = wait

    def send(self, body: bytes, stop: Optional[threading.Event] = None) -> Optional[Failure]:
        """Deliver ``body``; None once delivered, else the last failure.

        Setting ``stop`` ends the waiting between attempts.
        """
        stop = stop or threading.Event()
        deadline = self._clock() + self.retry_time
        attempt = 0
        while True:
            attempt += 1
            failure = self._attempt(body)
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

    def close(self) -> None:
        self._session.close()

    def __repr__(self) -> str:
        return f"<Sender {self.safe_url} signed={bool(self._secret)}>"

    def _attempt(self, body: bytes) -> Optional[Failure]:
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        try:
            response = self._session.post(
                self._url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            )
        except requests.Timeout:
            return Failure(f"no answer within {self.timeout:g} s", permanent=False)
        except requests.exceptions.SSLError as error:
            return Failure(f"TLS failed: {_socket_error(error)}", permanent=True)
        except requests.ConnectionError as error:
            return Failure(f"could not connect: {_socket_error(error)}", permanent=False)
        except requests.RequestException as error:
            return Failure(f"could not send: {type(error).__name__}", permanent=True)
        status = response.status_code
        if 200 <= status < 300:
            return None
        reason = f"HTTP {status} {response.reason or ''}".rstrip()
        if status == 429 or status >= 500:
            return Failure(
                reason, permanent=False, retry_after=_retry_after(response.headers.get("Retry-After"))
            )
        return Failure(reason, permanent=True)


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
