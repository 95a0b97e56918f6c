"""The command line: global options, the subcommands and plugins' options.

Plugins given with ``-p`` add options and commands, so the command line is
read twice: once for the global options alone, to load the plugins, then in
full by a parser that knows what the plugins added.  The global options are
accepted before the command and after it, as pytest takes ``-p`` and ``-v``
anywhere: every command's parser is a :class:`_CommandParser`, which knows
them too.
"""

import argparse
import difflib
from collections.abc import Sequence
from typing import Any, NoReturn, Optional

import pluggy

from .. import __version__
from .._exit_status import ExitStatus
from .._isolation import call_plugins
from .._safety.printable import printable
from . import _demo, _plugins, _record, _replay, _simulate, _watch, _watch_many

__all__ = ["build_parser", "global_options"]


class _Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line on stderr, and exit status 2.

    argparse would print the usage first; the line says where to find it
    instead: the ``--help`` of the command the mistake was made in.  A
    mistyped command or option is followed by the one it most likely meant.
    What the user typed is escaped, as all stderr text is.  Subcommands'
    parsers, plugins' included, are of this class too.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(ExitStatus.USAGE, f"livecall: error: {printable(message)} (see: {self.prog} --help)\n")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """argparse's check of a choice (a command's name), with a guess when it fails."""
        try:
            super()._check_value(action, value)
        except argparse.ArgumentError as error:
            guess = _guess(str(value), [str(choice) for choice in action.choices or ()])
            if guess is None:
                raise
            raise argparse.ArgumentError(action, f"{error.message}; did you mean {guess!r}?") from None


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
    parser.add_argument("-V", "--version", action="version", version=f"livecall {__version__}")
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

    def parse_known_args(  # type: ignore[override]  # typeshed's overloads; this one is all it takes
        self, args: Optional[Sequence[str]] = None, namespace: Optional[argparse.Namespace] = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """What the command does not know is a mistake made in this command: its error names
        this command's ``--help``, not the top level's, where argparse would report it."""
        options, extras = super().parse_known_args(args, namespace)
        if extras:
            options_known = list(self._option_string_actions)
            guesses = [
                _guess(extra.split("=", 1)[0], options_known) for extra in extras if extra.startswith("-")
            ]
            meant = [guess for guess in guesses if guess is not None]
            hint = f" (did you mean {', '.join(meant)}?)" if meant else ""
            self.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return options, extras


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
    _record.add_parser(commands, plugin_options)
    _watch_many.add_parser(commands, plugin_options)
    _demo.add_parser(commands, plugin_options)
    _simulate.add_parser(commands)
    _replay.add_parser(commands)
    _plugins.add_parser(commands)
    _raise_first(call_plugins(pm, "livecall_register_commands", subparsers=commands))
    return parser


def _guess(typed: str, known: list[str]) -> Optional[str]:
    """The known name ``typed`` is most likely a typo of, if any is close enough."""
    guesses = difflib.get_close_matches(typed, known, n=1, cutoff=0.75)
    return guesses[0] if guesses else None


def _raise_first(failures: list) -> None:
    if failures:
        raise failures[0]
