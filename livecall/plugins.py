"""Finding, loading and listing plugins.

Nothing here runs at ``import livecall``: the process-wide manager is built the
first time something asks for it, so importing the library never imports a
third-party plugin.

An installed plugin that fails to load is skipped with one warning naming it,
and remembered, so that ``livecall plugins`` can show why: one broken package
must not break every command and every program that uses livecall.
"""

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

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "PLUGINS_ENV",
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
_OFF = frozenset({"", "0", "false", "no", "off"})

#: Built-ins, written as ordinary plugins; ``-p no:NAME`` disables them too.
DEFAULT_PLUGINS: dict[str, str] = {"output": "livecall.default_plugins.output"}

_lock = threading.Lock()
_manager: Optional[pluggy.PluginManager] = None


def create_plugin_manager(
    modules: Iterable[str] = (),
    disabled: Iterable[str] = (),
    autoload: Optional[bool] = None,
) -> pluggy.PluginManager:
    """A manager with the built-ins, installed plugins and ``modules`` registered.

    ``modules`` are import names (``-p MODULE``); one that is installed
    already is left as it is.  ``disabled`` are plugin names to keep out
    (``-p no:NAME``).  ``autoload`` defaults to on unless
    ``LIVECALL_DISABLE_PLUGIN_AUTOLOAD`` is set to something other than
    ``0``/``false``; ``LIVECALL_PLUGINS=a,b`` then loads only the installed
    plugins named.  An installed plugin that fails to load is skipped with a
    warning and listed by ``get_plugins()`` with the reason.
    """
    pm = bare_plugin_manager()
    for name in disabled:
        pm.set_blocked(name)
    if autoload is None:
        autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "").strip().lower() in _OFF
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


def bare_plugin_manager() -> pluggy.PluginManager:
    """A manager that knows livecall's hooks and holds no plugin, not even the built-ins."""
    pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
    pm.add_hookspecs(hookspecs)
    return pm


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
    An installed plugin that failed to load has no hooks and an ``error``.
    """
    pm = pm or get_plugin_manager()
    distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    plugins = [dict(failed, hooks=[], classes={}) for failed in _failures.get(pm, {}).values()]
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        info: dict[str, Any] = {
            "name": name,
            "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()),
            "classes": _classes_with_hooks(pm, plugin),
        }
        dist = distributions.get(id(plugin))
        if dist is not None:
            info["distribution"] = dist.project_name
            info["version"] = dist.version
        plugins.append(info)
    return sorted(plugins, key=lambda info: info["name"])


def _classes_with_hooks(pm: pluggy.PluginManager, plugin: object) -> dict[str, list[str]]:
    """The classes a plugin module defines or exports from its own package, with their hooks."""
    if not inspect.ismodule(plugin):
        return {}
    package = plugin.__name__
    classes = {}
    for cls in vars(plugin).values():
        module = getattr(cls, "__module__", "")
        if not inspect.isclass(cls) or not (module == package or module.startswith(package + ".")):
            continue
        hooks = sorted(name for name in dir(cls) if pm.parse_hookimpl_opts(cls, name) is not None)
        if hooks:
            classes[cls.__qualname__] = hooks
    return classes
