"""Finding, loading and listing plugins.

Nothing here runs at ``import livecall``: the process-wide manager is built the
first time something asks for it, so importing the library never imports a
third-party plugin.

An installed plugin that fails to load is skipped with one warning naming it,
and remembered, so that ``livecall plugins`` can show why: one broken package
must not break every command and every program that uses livecall.

A hook implementation whose name livecall does not know (``livecall_transcripts``)
would never be called, and pluggy accepts it without a word: every manager made
here says so as the plugin is registered, naming the nearest real hook, and a
strict one refuses the plugin instead.
"""

import difflib
import importlib
import importlib.metadata
import inspect
import logging
import os
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Optional

import pluggy

from . import hookspecs
from .errors import LivecallError

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
    "STRICT_ENV",
    "UnknownHookError",
    "create_plugin_manager",
    "get_plugin_manager",
    "get_plugins",
]

log = logging.getLogger("livecall.plugins")

ENTRY_POINT_GROUP = "livecall"
#: Set to skip third-party plugins found through entry points (``0``, ``false``, ``no``, ``off``: don't).
DISABLE_AUTOLOAD_ENV = "LIVECALL_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated names of the installed plugins to load, and no others; empty: none.
PLUGINS_ENV = "LIVECALL_PLUGINS"
#: Set to refuse a plugin implementing a hook livecall does not have, rather than warn of it.
STRICT_ENV = "LIVECALL_STRICT_PLUGINS"
_OFF = frozenset({"", "0", "false", "no", "off"})
#: pluggy's project name: only implementations named so are meant as hooks (not a plugin's helpers).
_HOOK_PREFIX = ENTRY_POINT_GROUP + "_"

#: Built-ins, written as ordinary plugins; ``-p no:NAME`` disables them too.
DEFAULT_PLUGINS: dict[str, str] = {"output": "livecall.default_plugins.output"}

_lock = threading.Lock()
_manager: Optional[pluggy.PluginManager] = None


def create_plugin_manager(
    modules: Iterable[str] = (),
    disabled: Iterable[str] = (),
    autoload: Optional[bool] = None,
    strict: Optional[bool] = None,
) -> pluggy.PluginManager:
    """A manager with the built-ins, installed plugins and ``modules`` registered.

    ``modules`` are import names (``-p MODULE``); one that is installed
    already is left as it is.  ``disabled`` are plugin names to keep out
    (``-p no:NAME``).  ``autoload`` defaults to on unless
    ``LIVECALL_DISABLE_PLUGIN_AUTOLOAD`` is set to something other than
    ``0``/``false``; ``LIVECALL_PLUGINS=a,b`` then loads only the installed
    plugins named.  An installed plugin that fails to load is skipped with a
    warning and listed by ``get_plugins()`` with the reason.

    A plugin implementing a ``livecall_*`` hook that does not exist gets a
    warning naming the nearest hook, here and whenever it is registered later;
    with ``strict`` (default: on when ``LIVECALL_STRICT_PLUGINS`` is set to
    something other than ``0``/``false``) it is refused with
    ``UnknownHookError`` instead, from this function for an installed or
    ``-p`` plugin, from ``register()`` for one registered later.
    """
    if strict is None:
        strict = _env_flag(STRICT_ENV)
    pm = bare_plugin_manager(strict=strict)
    for name in disabled:
        pm.set_blocked(name)
    if autoload is None:
        autoload = not _env_flag(DISABLE_AUTOLOAD_ENV)
    if autoload:
        _load_installed(pm, _chosen())
    for name in modules:
        if not pm.is_blocked(name) and pm.get_plugin(name) is None:
            imported = importlib.import_module(name)
            if not pm.is_registered(imported):  # -p of an installed plugin: it is there already
                pm.register(imported, name=name)
    for name, module in DEFAULT_PLUGINS.items():
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(module), name=name)
    return pm


def _env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to anything but nothing, 0, false, no or off."""
    return os.environ.get(name, "").strip().lower() not in _OFF


def _chosen() -> Optional[set[str]]:
    """The names in ``LIVECALL_PLUGINS``; None when it is not set (all of them)."""
    names = os.environ.get(PLUGINS_ENV)
    if names is None:
        return None
    return {name.strip() for name in names.split(",") if name.strip()}


def _installed() -> Iterator[tuple[str, importlib.metadata.Distribution]]:
    """Each entry point name of the group, with the distribution declaring it, once."""
    seen = set()
    for dist in importlib.metadata.distributions():
        for entry_point in dist.entry_points:
            if entry_point.group == ENTRY_POINT_GROUP and entry_point.name not in seen:
                seen.add(entry_point.name)
                yield entry_point.name, dist


def _load_installed(pm: pluggy.PluginManager, chosen: Optional[set[str]]) -> None:
    """Load the installed plugins one by one, so that a broken one costs only itself."""
    found = set()
    for name, dist in _installed():
        found.add(name)
        if chosen is not None and name not in chosen or pm.is_blocked(name) or pm.get_plugin(name):
            continue
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP, name=name)
        except UnknownHookError:  # strict: an error, not a plugin to skip
            raise
        except (Exception, SystemExit) as error:  # an import error, a bad hook, sys.exit()...
            if pm.get_plugin(name) is not None:  # pluggy leaves a plugin it refused half registered
                pm.unregister(name=name)
            reason = " ".join(f"{type(error).__name__}: {error}".split())
            _failures.setdefault(pm, {})[name] = {
                "name": name,
                "distribution": dist.metadata["Name"],
                "version": dist.version,
                "error": reason,
            }
            log.warning(
                "plugin %r failed to load and is skipped (-p no:%s hides this): %s", name, name, reason
            )
    for name in sorted((chosen or set()) - found - DEFAULT_PLUGINS.keys()):  # built-ins always load
        log.warning(
            "%s names %r, which is not an installed plugin (see: livecall plugins)", PLUGINS_ENV, name
        )


#: The installed plugins each manager could not load, by name.
_failures: "weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, dict[str, Any]]]" = (
    weakref.WeakKeyDictionary()
)


class UnknownHookError(LivecallError, pluggy.PluginValidationError):
    """A plugin implements a ``livecall_*`` hook that livecall does not have (strict mode).

    A ``PluginValidationError``, as pluggy's own refusals are, and a
    ``LivecallError``, so that the command says it in one line.
    """


class _CheckingPluginManager(pluggy.PluginManager):
    """pluggy's manager, which names a plugin's misspelt hooks as it registers the plugin.

    pluggy keeps an implementation without a hook specification in case the
    specification comes later; livecall's hooks are all known up front, so
    such an implementation is a mistake that would go unnoticed.
    """

    def __init__(self, strict: bool) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.strict = strict
        self.add_hookspecs(hookspecs)

    def register(self, plugin: object, name: Optional[str] = None) -> Optional[str]:
        registered_as = super().register(plugin, name)
        if registered_as is None:  # a blocked name: not registered at all
            return None
        unknown = unknown_hooks(self, plugin)
        if unknown:
            message = f"plugin {_label(plugin, registered_as)!r} implements " + "; ".join(
                f"{hook}, which is never called ({describe_unknown(guess)})"
                for hook, guess in unknown.items()
            )
            if self.strict:
                self.unregister(plugin)
                raise UnknownHookError(plugin, f"{message}; the plugin is refused")
            log.warning("%s", message)
        return registered_as


def _label(plugin: object, registered_as: str) -> str:
    """The plugin's name; for one registered without a name, which pluggy names by its ``id()``,
    its module's or class's name, which says more in a warning."""
    if registered_as != str(id(plugin)):
        return registered_as
    return getattr(plugin, "__name__", None) or type(plugin).__qualname__


def bare_plugin_manager(strict: bool = False) -> pluggy.PluginManager:
    """A manager that knows livecall's hooks and holds no plugin, not even the built-ins.

    It warns of a plugin implementing a hook livecall does not have, or with
    ``strict`` refuses it with ``UnknownHookError``.
    """
    return _CheckingPluginManager(strict)


def unknown_hooks(pm: pluggy.PluginManager, plugin: object) -> dict[str, Optional[str]]:
    """The ``livecall_*`` hooks ``plugin`` implements that ``pm`` has no specification of,
    each with the nearest hook it has (None: none is near).

    Implementations marked ``optionalhook`` are meant for hooks that may not exist.
    """
    unknown = {}
    for caller in pm.get_hookcallers(plugin) or ():
        if caller.has_spec() or not caller.name.startswith(_HOOK_PREFIX):
            continue
        if any(impl.plugin is plugin and not impl.optionalhook for impl in caller.get_hookimpls()):
            unknown[caller.name] = nearest_hook(pm, caller.name)
    return unknown


def nearest_hook(pm: pluggy.PluginManager, name: str) -> Optional[str]:
    """The hook of ``pm`` whose name is closest to ``name``, if one is close."""
    known = [hook for hook in vars(pm.hook) if _has_spec(pm, hook)]
    close = difflib.get_close_matches(name, known, n=1)
    return close[0] if close else None


def _has_spec(pm: pluggy.PluginManager, hook: str) -> bool:
    caller = getattr(pm.hook, hook, None)
    return caller is not None and caller.has_spec()


def describe_unknown(guess: Optional[str]) -> str:
    """``unknown hook: did you mean livecall_transcript?``, as warnings and listings say it."""
    return f"unknown hook: did you mean {guess}?" if guess else "unknown hook"


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager that clients use unless given their own."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = create_plugin_manager()
        return _manager


def get_plugins(pm: Optional[pluggy.PluginManager] = None) -> list[dict[str, Any]]:
    """Each plugin: name, hooks it implements, and its distribution if installed.

    ``classes`` maps each class a plugin module offers with hooks of its own
    (registered by the plugin at run time, or by a program) to those hooks.
    ``unknown_hooks`` maps each of those hooks, or the plugin's own, that
    livecall does not have to the nearest hook it has (None: none is near).
    An installed plugin that failed to load has no hooks and an ``error``.
    """
    pm = pm or get_plugin_manager()
    distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    plugins = [
        dict(failed, hooks=[], classes={}, unknown_hooks={}) for failed in _failures.get(pm, {}).values()
    ]
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        classes, unknown = _classes_with_hooks(pm, plugin)
        unknown.update(unknown_hooks(pm, plugin))
        info: dict[str, Any] = {
            "name": name,
            "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()),
            "classes": classes,
            "unknown_hooks": dict(sorted(unknown.items())),
        }
        dist = distributions.get(id(plugin))
        if dist is not None:
            info["distribution"] = dist.project_name
            info["version"] = dist.version
        plugins.append(info)
    return sorted(plugins, key=lambda info: info["name"])


def _classes_with_hooks(
    pm: pluggy.PluginManager, plugin: object
) -> tuple[dict[str, list[str]], dict[str, Optional[str]]]:
    """The classes a plugin module defines or exports from its own package, with their hooks;
    and those hooks livecall does not have, each with the nearest it has (as ``unknown_hooks``)."""
    classes: dict[str, list[str]] = {}
    unknown: dict[str, Optional[str]] = {}
    if not inspect.ismodule(plugin):
        return classes, unknown
    package = plugin.__name__
    for cls in vars(plugin).values():
        module = getattr(cls, "__module__", "")
        if not inspect.isclass(cls) or not (module == package or module.startswith(package + ".")):
            continue
        hooks = {name: opts for name in dir(cls) if (opts := pm.parse_hookimpl_opts(cls, name)) is not None}
        if hooks:
            classes[cls.__qualname__] = sorted(hooks)
        for name, opts in hooks.items():
            if name.startswith(_HOOK_PREFIX) and not _has_spec(pm, name) and not opts.get("optionalhook"):
                unknown[name] = nearest_hook(pm, name)
    return classes, unknown
