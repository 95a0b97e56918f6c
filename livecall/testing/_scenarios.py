"""The scenario registry: names users pick, and how a name becomes a script.

A scenario name is a base call (``screening``, ``conversation``, ``flood``,
and Phonic's ``long``),
a fault (``drop``, ``silence``, ``malformed``) applied to the provider's
default call, or several joined with ``+`` (``flood+drop``,
``malformed+silence``).  ``auth`` and ``auth-close`` stand alone.
"""

from collections.abc import Mapping
from typing import Callable, Optional

import attrs

from ._hiya import HIYA
from ._options import ScenarioOptions
from ._phonic import PHONIC
from ._provider import Provider
from ._steps import Close, Cut, Script, Send, Silence

PROVIDERS: dict[str, Provider] = {provider.name: provider for provider in (HIYA, PHONIC)}


@attrs.frozen
class _Context:
    """What a scenario is built for."""

    provider: Provider
    options: ScenarioOptions
    credentials: Mapping[str, str]


Fault = Callable[[Script, _Context], Script]


@attrs.frozen
class ScenarioInfo:
    """One line of ``livecall simulate --list``; ``options`` tune it from Python only."""

    provider: str
    name: str
    summary: str
    #: The ``Simulator`` keyword options (``ScenarioOptions``) that tune it.
    options: tuple[str, ...] = ()


def _drop(script: Script, context: _Context) -> Script:
    options = context.options
    plan = options.drop_plan(script.message_count)
    return script.with_inserted([(position, Cut(mode, options.lose)) for position, mode in plan])


def _silence(script: Script, context: _Context) -> Script:
    options = context.options
    position = options.middle(script.message_count) if options.silence_at is None else options.silence_at
    return script.with_inserted([(position, Silence(options.lose))])


def _malformed(script: Script, context: _Context) -> Script:
    frames = context.provider.malformed(context.credentials)
    span = max(1, script.message_count - 1)
    spread = [(1 + i * span // len(frames), Send(frame)) for i, frame in enumerate(frames)]
    return script.with_inserted(spread)


def _auth(context: _Context) -> Script:
    return Script((Close((), 1008),), refuse=401)  # the Close is never reached: no handshake succeeds


def _auth_close(context: _Context) -> Script:
    error = context.provider.error("invalid or expired credentials")
    return Script((Close((error,), 1008, "unauthorized"),))


_DROP_OPTIONS = ("drop_mode", "drops", "drop_at", "lose", "seed")
_FAULTS: dict[str, tuple[str, Fault, tuple[str, ...]]] = {
    "drop": ("cuts the connection mid-call", _drop, _DROP_OPTIONS),
    "silence": (
        "goes silent mid-call, TCP open, pings unanswered, until the client reconnects",
        _silence,
        ("silence_at", "lose"),
    ),
    "malformed": ("mixes bad frames into the call: invalid JSON, binary, array, bad fields", _malformed, ()),
}
_STANDALONE: dict[str, tuple[str, Callable[[_Context], Script]]] = {
    "auth": ("refuses every handshake with HTTP 401", _auth),
    "auth-close": ("accepts the handshake, sends an error message, closes with 1008", _auth_close),
}


def scenarios(provider: Optional[str] = None) -> tuple[ScenarioInfo, ...]:
    """Every scenario name, for one provider or both; the default comes first."""
    infos = []
    for name in [provider] if provider else list(PROVIDERS):
        spec = provider_spec(name)
        bases = sorted(spec.scripts.items(), key=lambda item: item[0] != spec.default_scenario)
        for scenario, base in bases:
            infos.append(ScenarioInfo(name, scenario, base.summary, base.options))
        for scenario, (summary, _, options) in _FAULTS.items():
            infos.append(ScenarioInfo(name, scenario, summary, options))
        for scenario, (summary, _) in _STANDALONE.items():
            infos.append(ScenarioInfo(name, scenario, summary))
    return tuple(infos)


def provider_spec(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}: choose from {sorted(PROVIDERS)}") from None


def build(
    provider: Provider, scenario: str, options: ScenarioOptions, credentials: Mapping[str, str]
) -> Script:
    """The script for ``scenario`` (a name or names joined with ``+``)."""
    context = _Context(provider, options, credentials)
    names = scenario.split("+")
    if len(names) == 1 and names[0] in _STANDALONE:
        return _STANDALONE[names[0]][1](context)
    unknown = [name for name in names if name not in provider.scripts and name not in _FAULTS]
    if unknown:
        known = ", ".join(info.name for info in scenarios(provider.name))
        raise ValueError(f"unknown {provider.name} scenario {unknown[0]!r} (auth ones stand alone): {known}")
    bases = [name for name in names if name in provider.scripts] or [provider.default_scenario]
    if len(bases) > 1:
        raise ValueError(f"scenario {scenario!r} names more than one base call: {bases}")
    script = provider.scripts[bases[0]].build(options, credentials)
    for name in names:
        if name in _FAULTS:
            script = _FAULTS[name][1](script, context)
    return script
