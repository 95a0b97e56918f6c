"""Calling plugins one at a time: a failure is reported, never passed on to the next plugin.

pluggy stops at the first implementation that raises.  livecall must not: a
plugin that fails to configure, flush or handle an event may not cost another
plugin its turn, so every caller of plugins (a watch's dispatcher, the
command line's configure and unconfigure, a run's cleanups) goes through
these two functions.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Callable

import pluggy

from .errors import PluginError

__all__ = ["Step", "call_each", "call_plugins", "hook_plan"]

#: One implementation to call: its plugin's name, the function and its argument names.
Step = tuple[str, Callable[..., Any], tuple[str, ...]]


def hook_plan(pm: pluggy.PluginManager, hook_name: str, *later: pluggy.PluginManager) -> list[Step]:
    """The implementations of a hook in the order pluggy itself would call them.

    The plugins of the ``later`` managers count as registered after those of
    ``pm``: within each of pluggy's groups (``tryfirst``, plain, ``trylast``)
    they run first, as the last registered plugin does.
    """
    impls = []
    for manager in (*reversed(later), pm):
        impls += reversed(getattr(manager.hook, hook_name).get_hookimpls())
    impls.sort(key=_group)  # stable: each manager's order and the managers' order hold
    steps = []
    for impl in impls:
        if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
            raise PluginError(impl.plugin_name, hook_name, TypeError("livecall hooks cannot be wrappers"))
        steps.append((impl.plugin_name, impl.function, tuple(impl.argnames)))
    return steps


def _group(impl: Any) -> int:
    return 0 if impl.tryfirst else 2 if impl.trylast else 1


def call_each(steps: Sequence[Step], hook_name: str, kwargs: dict[str, Any]) -> list[PluginError]:
    """Call every step, whatever the others do; one ``PluginError`` per failure."""
    failures = []
    for plugin_name, function, argnames in steps:
        try:
            function(*[kwargs[name] for name in argnames])
        except (Exception, SystemExit) as error:  # sys.exit() in a hook ends nothing either
            failures.append(PluginError(plugin_name, hook_name, error))
    return failures


def call_plugins(
    pm: pluggy.PluginManager, hook_name: str, skip: Iterable[str] = (), **kwargs: Any
) -> list[PluginError]:
    """Every implementation of ``hook_name`` but those of the plugins in ``skip``, each on its own."""
    skipped = frozenset(skip)
    steps = [step for step in hook_plan(pm, hook_name) if step[0] not in skipped]
    return call_each(steps, hook_name, kwargs)
