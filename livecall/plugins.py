"""Finding, loading and listing plugins.

Nothing here runs at ``import livecall``: the process-wide manager is built the
first time something asks for it, so importing the library never imports a
third-party plugin.
"""

import importlib
import os
import threading
from collections.abc import Iterable
from typing import Any, Optional

import pluggy

from . import hookspecs

__all__ = [
    "DISABLE_AUTOLOAD_ENV",
    "ENTRY_POINT_GROUP",
    "create_plugin_manager",
    "get_plugin_manager",
    "get_plugins",
]

ENTRY_POINT_GROUP = "livecall"
#: Set to any non-empty value to skip third-party plugins found through entry points.
DISABLE_AUTOLOAD_ENV = "LIVECALL_DISABLE_PLUGIN_AUTOLOAD"

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

    ``modules`` are import names (``-p MODULE``), ``disabled`` are plugin names
    to keep out (``-p no:NAME``).  ``autoload`` defaults to on unless
    ``LIVECALL_DISABLE_PLUGIN_AUTOLOAD`` is set.
    """
    pm = bare_plugin_manager()
    for name in disabled:
        pm.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get(DISABLE_AUTOLOAD_ENV)
    if autoload:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for name in modules:
        if not pm.is_blocked(name) and pm.get_plugin(name) is None:
            pm.register(importlib.import_module(name), name=name)
    for name, module in DEFAULT_PLUGINS.items():
        if not pm.is_blocked(name):
            pm.register(importlib.import_module(module), name=name)
    return pm


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
    """Each registered plugin: name, hooks it implements, and its distribution if installed."""
    pm = pm or get_plugin_manager()
    distributions = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    plugins = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        info: dict[str, Any] = {
            "name": name,
            "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()),
        }
        dist = distributions.get(id(plugin))
        if dist is not None:
            info["distribution"] = dist.project_name
            info["version"] = dist.version
        plugins.append(info)
    return sorted(plugins, key=lambda info: info["name"])
