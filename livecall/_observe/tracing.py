"""OpenTelemetry spans for each handshake and each event, on the application's providers.

Imported only by ``livecall.observability.enable_tracing()``, so
``opentelemetry-api`` is needed only then (``pip install 'livecall[otel]'``).
Spans follow OpenTelemetry's messaging conventions: a ``connect`` span
(kind CLIENT) per opening handshake, and a ``process`` span (kind
CONSUMER, ``messaging.operation.type`` ``process``) per event, linked to
its connection's span and current while the hooks run, so that a plugin
can pass its context on (``traceparent()``: a webhook header, a Redis
field).  Span names hold the provider alone; the call id is the
``messaging.message.conversation_id`` attribute, the event's kind
``livecall.event.kind``.  Errors are recorded as OpenTelemetry records
exceptions (an ``exception`` event, ``error.type``, status ERROR), their
text redacted as livecall's logs are.
"""

import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

from opentelemetry import trace
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .._safety.secrets import redact
from .._version import __version__

__all__ = ["EVENT_KIND", "WatchTracer", "current_traceparent"]

#: The attribute holding an event's kind (``transcript``, ``gap``...).
EVENT_KIND = "livecall.event.kind"

_W3C = TraceContextTextMapPropagator()


class WatchTracer:
    """Makes livecall's spans with the tracer provider given, or the global one."""

    def __init__(self, tracer_provider: Optional[Any] = None):
        self._tracer = trace.get_tracer("livecall", __version__, tracer_provider=tracer_provider)
        #: Per dispatcher thread, the process span open there: ``failed()`` marks that one only,
        #: never a span of the application's that happens to be current.
        self._processing = threading.local()

    def connecting(self, provider: str, call_id: str) -> Any:
        """The span of one opening handshake, started now; :meth:`connected` ends it."""
        return self._tracer.start_span(
            f"connect {provider}",
            kind=SpanKind.CLIENT,
            attributes={
                "messaging.system": provider,
                "messaging.operation.name": "connect",
                "messaging.message.conversation_id": call_id,
                "network.protocol.name": "websocket",
            },
        )

    def connected(self, span: Any, error: Optional[BaseException]) -> Optional[SpanContext]:
        """End a handshake's span, with its error if it failed; returns what process spans link to."""
        if error is not None:
            _record(span, error)
        span.end()
        return span.get_span_context() if error is None else None

    @contextmanager
    def process(
        self, provider: str, call_id: str, kind: str, connection: Optional[SpanContext]
    ) -> Iterator[Any]:
        """The span of one event's hooks, current in the dispatcher's thread while they run."""
        with self._tracer.start_as_current_span(
            f"process {provider}",
            kind=SpanKind.CONSUMER,
            links=[Link(connection)] if connection is not None else None,
            attributes={
                "messaging.system": provider,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.message.conversation_id": call_id,
                EVENT_KIND: kind,
            },
        ) as span:
            processing = self._processing
            outer = getattr(processing, "span", None)
            processing.span = span
            try:
                yield span
            finally:
                processing.span = outer

    def failed(self, error: BaseException) -> None:
        """A hook or callback raised during an event: recorded on that event's span, if one is open."""
        span = getattr(self._processing, "span", None)
        if span is not None:
            _record(span, error)


def _record(span: Any, error: BaseException) -> None:
    """``error`` on ``span`` as OpenTelemetry records an exception, credentials blanked."""
    cls = type(error)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    message = redact(str(error))
    stack = "".join(traceback.format_exception(cls, error, error.__traceback__))
    span.add_event(
        "exception",
        {"exception.type": name, "exception.message": message, "exception.stacktrace": redact(stack)},
    )
    span.set_attribute("error.type", name)
    span.set_status(Status(StatusCode.ERROR, message))


def current_traceparent() -> Optional[str]:
    """The W3C ``traceparent`` of the current span; None when no valid span is current."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")
