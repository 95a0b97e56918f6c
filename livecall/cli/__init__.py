"""The ``livecall`` command: watch a call from a shell or a cron job.

Every command is an argparse subcommand whose ``func(config)`` returns the
exit status (None for 0); plugins add their own through
``livecall_register_commands``.  Exit statuses are listed in ``_exit``.

A reader of stdout that went away (``livecall plugins | head -3``) ends
every command quietly with 0: that is handled here, once, not by each
command.
"""

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Optional

import pluggy

from .._exit_status import ExitStatus
from .._safety.printable import printable, printable_lines
from .._safety.secrets import redact
from ..config import Config
from ..errors import ConfigurationError, LivecallError
from ..plugins import create_plugin_manager
from ._completion import completion
from ._exit import describe, status_for
from ._guard import reader_gone
from ._logging import CHECKS_FIRST, logging_to_stderr, short_credentials
from ._parser import build_parser, global_options
from ._signals import Interrupted, signals

__all__ = ["main"]

_DISABLE = "no:"


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``livecall`` with ``argv`` (default: the process's arguments); returns its exit status.

    The console script and ``python -m livecall`` exit with it.  argparse's
    own exits (a usage error, ``--help``, ``--version``) are returned as
    statuses too, so a program calling this never has to catch ``SystemExit``.
    """
    try:
        return run(argv)
    except SystemExit as exit:
        return _flush_stdout(_exit_status(exit))


def run(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``livecall`` and return its exit status (argparse still exits on bad usage)."""
    global_parser = global_options()
    early, _ = global_parser.parse_known_args(argv)
    if sys.stdout is None:  # started with stdout closed (`>&-`)
        _error("stdout is closed; to discard the output, send it to /dev/null")
        return ExitStatus.FAILURE
    config: Optional[Config] = None
    with logging_to_stderr(early.verbose), signals.handled():
        try:
            pm = _plugin_manager(early.plugins)
            parser = build_parser(pm, global_parser)
            completion(parser)
            options = parser.parse_args(argv)
            _global_options_anywhere(options, early)
            config = Config(options, pm, sys.stdout, sys.stderr, stopping=signals.stopping)
            if not getattr(options, CHECKS_FIRST, False):
                short_credentials.release()
            with signals.interruptible():
                status = options.func(config) or ExitStatus.OK
        except Interrupted as interrupted:
            status = interrupted.status
        except BrokenPipeError as error:  # `livecall plugins | head -3`: the reader has all it wants
            status = ExitStatus.OK if reader_gone(sys.stdout) else _report(error, early.verbose)
        except Exception as error:
            status = _report(error, early.verbose)
        if status != ExitStatus.USAGE:
            short_credentials.release()
        if config is not None:
            status = _with_failures(config, status)
    return _flush_stdout(status)


def _exit_status(exit: SystemExit) -> int:
    """The status ``sys.exit(code)`` asks for; text is said on stderr, as Python would, and is 1."""
    if exit.code is None or isinstance(exit.code, int):
        return exit.code or ExitStatus.OK
    print(exit.code, file=sys.stderr, flush=True)
    return ExitStatus.FAILURE


def _global_options_anywhere(options: argparse.Namespace, early: argparse.Namespace) -> None:
    """The global options as the first reading saw them: all of them, before the command and after."""
    options.verbose, options.quiet, options.plugins = early.verbose, early.quiet, early.plugins


def _plugin_manager(names: list[str]) -> pluggy.PluginManager:
    modules = [name for name in names if not name.startswith(_DISABLE)]
    disabled = [name[len(_DISABLE) :] for name in names if name.startswith(_DISABLE)]
    try:
        return create_plugin_manager(modules=modules, disabled=disabled)
    except ModuleNotFoundError as error:
        if error.name not in modules:
            raise
        raise ConfigurationError(f"no plugin module named {error.name!r} (-p {error.name})") from None


def _report(error: BaseException, verbose: int) -> int:
    """One line on stderr, after the traceback with ``-v``; credentials blanked either way."""
    if verbose:
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        sys.stderr.write(printable_lines(redact(text)))
    hint = "" if verbose or isinstance(error, LivecallError) else " (-v shows the traceback)"
    _error(describe(error) + hint)
    return status_for(error)


def _with_failures(config: Config, status: int) -> int:
    """Work plugins could not finish: each said on stderr; the worst status if the call went well."""
    for _, message in config.failures:
        _error(message)
    if status == ExitStatus.OK and config.failures:
        return max(failure_status for failure_status, _ in config.failures)
    return status


def _error(message: str) -> None:
    """One line on stderr: credentials blanked, a server's text unable to forge another line."""
    print(f"livecall: error: {printable(redact(message))}", file=sys.stderr, flush=True)


def _flush_stdout(status: int) -> int:
    """The status, made a failure if stdout could not take what was printed (a full disk).

    A reader that went away (``| head``) is no error.  Either way stdout is
    pointed at /dev/null, so that Python's own flush at exit says nothing more.
    """
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    except OSError as error:
        _error(f"cannot write to stdout: {error.strerror or error}")
        status = status or ExitStatus.FAILURE
    else:
        return status
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return status
