"""What differs between the simulated providers, behind one small interface."""

import hmac
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, Optional

import attrs

from ._options import ScenarioOptions
from ._steps import Payload, Script

Rejection = tuple[int, str]  # HTTP status and the body text (never a credential)
Effect = Optional[str]  # "join" or "end": what a client message does to the call


@attrs.frozen
class BaseScript:
    """A named normal call a provider can play; faults are composed onto it."""

    summary: str
    build: Callable[[ScenarioOptions, Mapping[str, str]], Script]
    #: The ``Simulator`` keyword options (``ScenarioOptions``) that tune it.
    options: tuple[str, ...] = ()


def same_secret(given: Optional[str], expected: str) -> bool:
    """Constant-time comparison, as a real server would do it."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, as both providers write timestamps."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(timezone.utc))


class Provider:
    """One provider's protocol: handshake rules, client messages, scripts.

    Subclasses fill in the class attributes and methods; instances are stateless.
    """

    name: str
    default_scenario: str
    #: credential name -> default value; these names are keyword arguments of Simulator.
    credentials: Mapping[str, str]
    #: the credentials passed on to the livecall client, under the same names
    client_credentials: tuple[str, ...]
    scripts: Mapping[str, BaseScript]

    def client_kwargs(self, url: str, credentials: Mapping[str, str]) -> dict[str, str]:
        """The keyword arguments the livecall client for this provider takes."""
        return dict(url=url, **{name: credentials[name] for name in self.client_credentials})

    def check(self, request: Any, credentials: Mapping[str, str]) -> Optional[Rejection]:
        """Why the handshake ``request`` (a :class:`ConnectionRecord`) is refused, or None."""
        raise NotImplementedError

    def answer(self, frame: Any) -> tuple[Optional[Payload], Effect]:
        """The reply to a client frame, if any, and its effect on the call."""
        return None, None

    def error(self, message: str) -> Payload:
        """This provider's ``error`` message."""
        raise NotImplementedError

    def malformed(self, credentials: Mapping[str, str]) -> list[Payload]:
        """Frames a robust client must survive, one of each kind of defect."""
        return ["{not json", b"\x00\x01 binary frame", [1, 2, 3], *self.bad_messages(credentials)]

    def bad_messages(self, credentials: Mapping[str, str]) -> list[Payload]:
        """JSON objects wrong for this provider: no ``type``, unknown ``type``, a missing
        field, a wrongly typed field, an odd ``role``."""
        raise NotImplementedError
