"""The command line: global options first, then the subcommands and plugins' options.

Plugins given with ``-p`` add options and commands, so the command line is
read twice: once for the global options alone, to load the plugins, then in
full by a parser that knows what the plugins added.
"""

import argparse

import pluggy

from .. import __version__
from . import _demo, _plugins, _simulate, _watch, _watch_many
from ._lifecycle import call_each

__all__ = ["build_parser", "global_options"]


def global_options() -> argparse.ArgumentParser:
    """``-v``, ``-p`` and ``--version``, which come before the subcommand."""
    parser = argparse.ArgumentParser(prog="livecall", add_help=False, allow_abbrev=False)
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log progress to stderr; -vv to debug (credentials are never shown)",
    )
    parser.add_argument(
        "-p",
        dest="plugins",
        metavar="MODULE",
        action="append",
        default=[],
        help="load a plugin module by import name; -p no:NAME disables a plugin (repeatable)",
    )
    parser.add_argument("--version", action="version", version=f"livecall {__version__}")
    return parser


def build_parser(pm: pluggy.PluginManager, global_parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The full parser: built-in commands, plugins' options and plugins' commands."""
    parser = argparse.ArgumentParser(
        prog="livecall",
        parents=[global_parser],
        description="Watch live phone calls (Hiya) and AI voice conversations (Phonic) as they happen.",
        epilog="Exit status: 0 the call ended, 1 failure, 2 usage, 3 credentials refused, "
        "4 gave up reconnecting, 5 a plugin's work incomplete, 130/143 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    plugin_options = argparse.ArgumentParser(add_help=False)
    _raise_first(call_each(pm, "livecall_addoption", parser=plugin_options))
    _watch.add_parser(commands, plugin_options)
    _watch_many.add_parser(commands, plugin_options)
    _demo.add_parser(commands, plugin_options)
    _simulate.add_parser(commands)
    _plugins.add_parser(commands)
    _raise_first(call_each(pm, "livecall_register_commands", subparsers=commands))
    return parser


def _raise_first(failures: list) -> None:
    if failures:
        raise failures[0]
