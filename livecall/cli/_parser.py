"""The command line: global options, the subcommands and plugins' options.

Plugins given with ``-p`` add options and commands, so the command line is
read twice: once for the global options alone, to load the plugins, then in
full by a parser that knows what the plugins added.  The global options are
accepted before the command and after it, as pytest takes ``-p`` and ``-v``
anywhere: every command's parser is a :class:`_CommandParser`, which knows
them too.
"""

import argparse
from typing import Any, NoReturn

import pluggy

from .. import __version__
from .._exit_status import ExitStatus
from .._isolation import call_plugins
from .._safety.printable import printable
from . import _demo, _plugins, _simulate, _watch, _watch_many

__all__ = ["build_parser", "global_options"]


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line on stderr, and exit status 2.

    argparse would print the usage first; the line says where to find it
    instead.  What the user typed is escaped, as all stderr text is.
    Subcommands' parsers, plugins' included, are of this class too.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(ExitStatus.USAGE, f"livecall: error: {printable(message)} (see: {self.prog} --help)\n")


def _add_global_options(parser: Any, suppress: bool) -> None:
    """``-v``, ``-q`` and ``-p`` on ``parser`` (or a group); with ``suppress``, no defaults."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="log progress to stderr: the connection, its handshake and reconnects; "
        "-vv adds every frame's type and size, pings and pongs (credentials are never shown)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="print no transcript or JSON lines on stdout; plugins still run",
    )
    parser.add_argument(
        "-p",
        dest="plugins",
        metavar="MODULE",
        action="append",
        default=default([]),
        help="load a plugin module by import name; -p no:NAME disables a plugin (repeatable)",
    )


def global_options() -> argparse.ArgumentParser:
    """``-v``, ``-q``, ``-p`` and ``--version``, wherever they are on the command line."""
    parser = _Parser(prog="livecall", add_help=False, allow_abbrev=False)
    _add_global_options(parser, suppress=False)
    parser.add_argument("--version", action="version", version=f"livecall {__version__}")
    return parser


class _CommandParser(_Parser):
    """A command's parser: its own options, and the global ones after the command.

    Given after the command, a global option is only accepted here: its value
    comes from the first reading of the command line, which sees them all.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        group = self.add_argument_group("global options (also before the command)")
        _add_global_options(group, suppress=True)


def build_parser(pm: pluggy.PluginManager, global_parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The full parser: built-in commands, plugins' options and plugins' commands."""
    parser = _Parser(
        prog="livecall",
        parents=[global_parser],
        description="Watch live phone calls (Hiya) and AI voice conversations (Phonic) as they happen.",
        epilog="Exit status: 0 the call ended, 1 failure, 2 usage, 3 credentials refused, "
        "4 gave up reconnecting, 5 a plugin's work incomplete, 6 reached --max-duration or "
        "--idle-timeout, 129/130/143 interrupted (SIGHUP/SIGINT/SIGTERM).",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
    plugin_options = argparse.ArgumentParser(add_help=False)
    _raise_first(call_plugins(pm, "livecall_addoption", parser=plugin_options))
    _watch.add_parser(commands, plugin_options)
    _watch_many.add_parser(commands, plugin_options)
    _demo.add_parser(commands, plugin_options)
    _simulate.add_parser(commands)
    _plugins.add_parser(commands)
    _raise_first(call_plugins(pm, "livecall_register_commands", subparsers=commands))
    return parser


def _raise_first(failures: list) -> None:
    if failures:
        raise failures[0]
