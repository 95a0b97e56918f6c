"""The knobs of the fault and flood scenarios, checked once, up front."""

import random
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

import attrs

DropMode = Union[str, int]
DROP_MODES: tuple[DropMode, ...] = ("reset", 1001, 1011, 1012)


def _modes(value: Union[DropMode, Sequence[DropMode]]) -> tuple[DropMode, ...]:
    modes = (value,) if isinstance(value, (str, int)) else tuple(value)
    if not modes:
        raise ValueError("drop_mode needs at least one mode")
    for mode in modes:
        if mode not in DROP_MODES and modes != ("random",):
            raise ValueError(f"drop_mode {mode!r} is not one of {DROP_MODES} or 'random'")
    return modes


def _positions(value: Optional[Sequence[int]]) -> Optional[tuple[int, ...]]:
    return None if value is None else tuple(int(position) for position in value)


def _at_least(minimum: float) -> Callable[[object, "attrs.Attribute[Any]", float], None]:
    def check(instance: object, attribute: "attrs.Attribute[Any]", value: float) -> None:
        if value < minimum:
            raise ValueError(f"{attribute.name} must be at least {minimum}, not {value!r}")

    return check


@attrs.frozen(kw_only=True)
class ScenarioOptions:
    """Options for the scenarios, all keyword arguments of :class:`Simulator`.

    Positions count the script's messages: ``drop_at=(3,)`` cuts the
    connection after the third message.

    - ``drop_mode``: how ``drop`` cuts: ``"reset"`` (TCP RST, no close frame),
      a close code ``1001``, ``1011`` or ``1012``, a sequence of these (one per
      drop, cycled) or ``"random"`` (one drawn per drop, from ``seed``).
    - ``drops``: how many cuts when ``drop_at`` is not given; they are spread
      evenly, or drawn at random when ``seed`` is set.
    - ``drop_at``: explicit positions of the cuts.
    - ``silence_at``: position of the ``silence`` fault (default: mid-call).
    - ``lose``: messages the call goes on with while the client is cut off
      (Hiya loses them, Phonic's next snapshot carries their effect).
    - ``seed``: makes the random choices repeatable.
    - ``flood_count``: how many messages ``flood`` sends.
    - ``join_timeout``: how long Hiya's ``screening`` waits for ``client:joinCall``.
    - ``audio_urls``: Phonic's items carry an ``audio_url``, a presigned link
      to the turn's audio (made up, but long and unique per turn, like the
      real ones), as Phonic sends them.
    - ``data_retention_policy``: sent as the conversation's
      ``data_retention_policy`` in every Phonic snapshot, as given (any JSON
      value, odd ones included), such as ``{"zero_data_retention": True}``;
      None sends none.
    """

    drop_mode: tuple[DropMode, ...] = attrs.field(default="reset", converter=_modes)
    drops: int = attrs.field(default=1, validator=_at_least(1))
    drop_at: Optional[tuple[int, ...]] = attrs.field(default=None, converter=_positions)
    silence_at: Optional[int] = None
    lose: int = attrs.field(default=1, validator=_at_least(0))
    seed: Optional[int] = None
    flood_count: int = attrs.field(default=1000, validator=_at_least(1))
    join_timeout: float = attrs.field(default=5.0, validator=_at_least(0))
    audio_urls: bool = False
    data_retention_policy: Any = attrs.field(default=None, hash=False)  # a dict is not hashable

    def drop_plan(self, message_count: int) -> list[tuple[int, DropMode]]:
        """Where each cut goes and how it cuts, for a script of ``message_count`` messages."""
        rng = random.Random(self.seed)
        if self.drop_at is not None:
            positions = list(self.drop_at)
        elif self.seed is not None:
            positions = sorted(rng.randint(1, max(1, message_count - 1)) for _ in range(self.drops))
        else:
            positions = [self.middle(message_count, i, self.drops) for i in range(self.drops)]
        if self.drop_mode == ("random",):
            modes = [rng.choice(DROP_MODES) for _ in positions]
        else:
            modes = [self.drop_mode[i % len(self.drop_mode)] for i in range(len(positions))]
        return list(zip(positions, modes))

    @staticmethod
    def middle(message_count: int, index: int = 0, of: int = 1) -> int:
        """The ``index``-th of ``of`` evenly spread positions strictly inside the call."""
        return max(1, min(message_count - 1, round((index + 1) * message_count / (of + 1))))
