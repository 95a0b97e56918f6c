"""``livecall plugins``: what is loaded, where it comes from, which hooks it implements.

Also the hooks of the classes a plugin registers at run time (the CSV
writer's, say), and the installed plugins that failed to load, with why.  A
hook livecall does not have is marked where it is listed, with the nearest
real one: a misspelt hook is never called, and this is where one looks.
"""

import json
from typing import Any

from ..config import Config
from ..plugins import DEFAULT_PLUGINS, describe_unknown, get_plugins

__all__ = ["add_parser"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plugins",
        help="list the plugins livecall loads",
        description="List the plugins livecall loads: built-in, installed and given with -p.",
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    parser.set_defaults(func=plugins_command)


def plugins_command(config: Config) -> None:
    plugins = _plugins(config)
    if config.options.json:
        config.stdout.write(json.dumps(plugins, indent=2) + "\n")
        return
    for plugin in plugins:
        config.stdout.write(_describe(plugin))


def _describe(plugin: dict[str, Any]) -> str:
    heading = f"{plugin['name']} ({_origin(plugin)})"
    if plugin["error"]:
        return f"{heading}\n  failed to load: {plugin['error']}\n"
    lines = [heading, f"  hooks: {_hooks(plugin['hooks'], plugin)}"]
    lines += [f"  {cls} hooks: {_hooks(hooks, plugin)}" for cls, hooks in plugin["classes"].items()]
    return "".join(line + "\n" for line in lines)


def _hooks(hooks: list[str], plugin: dict[str, Any]) -> str:
    """``livecall_event, livecall_transcripts (unknown hook: did you mean livecall_transcript?)``."""
    unknown = plugin["unknown_hooks"]
    return ", ".join(
        f"{hook} ({describe_unknown(unknown[hook])})" if hook in unknown else hook for hook in hooks
    )


def _plugins(config: Config) -> list[dict[str, Any]]:
    """Every plugin with the same keys, ``null`` where a plugin has no distribution."""
    return [
        {
            "name": info["name"],
            "version": info.get("version"),
            "distribution": info.get("distribution"),
            "hooks": info["hooks"],
            "classes": info["classes"],
            "unknown_hooks": info["unknown_hooks"],
            "error": info.get("error"),
        }
        for info in get_plugins(config.plugin_manager)
    ]


def _origin(plugin: dict[str, Any]) -> str:
    if plugin["distribution"]:
        return f"{plugin['distribution']} {plugin['version']}"
    return "built-in" if plugin["name"] in DEFAULT_PLUGINS else "module"
