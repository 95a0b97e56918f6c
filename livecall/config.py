"""What ``livecall_configure`` and ``livecall_unconfigure`` receive."""

import argparse
import contextlib
import logging
import sys
from contextlib import AbstractContextManager
from typing import Any, Callable, Optional, TextIO

import attrs
import pluggy

from ._exit_status import ExitStatus
from ._isolation import Step, call_each

__all__ = ["Config"]

log = logging.getLogger("livecall.cli")


@attrs.define(eq=False)
class Config:
    """One run of livecall: its parsed options and the plugins taking part.

    ``options`` holds every command line option, the ones plugins added
    through ``livecall_addoption`` included.  ``stdout`` carries the call:
    with ``--format jsonl`` it is data, one JSON object per line and no other
    line, so a plugin that writes for a person writes to ``stderr`` then;
    ``output_format`` says which it is.  A plugin whose work did not complete (a
    webhook that could not deliver everything, say) calls ``fail()``; the
    command then exits with that status once the call itself went well.

    Objects that live for one run (a file writer, a forwarder) are tied to it
    with ``register()`` or ``add_cleanup()`` in ``livecall_configure``: the
    run's end unregisters and closes them, after ``livecall_unconfigure``,
    whatever else failed.
    """

    options: argparse.Namespace
    plugin_manager: pluggy.PluginManager = attrs.field(repr=False)
    stdout: TextIO = attrs.field(factory=lambda: sys.stdout, repr=False)
    stderr: TextIO = attrs.field(factory=lambda: sys.stderr, repr=False)
    failures: list[tuple[int, str]] = attrs.field(factory=list)
    _cleanups: list[tuple[str, Callable[[], Any]]] = attrs.field(factory=list, init=False, repr=False)
    #: How a signal stops a block (:meth:`stopping`): the ``livecall`` command passes its own
    #: signal handling; outside it, the block just runs.
    _stopping: Callable[[Callable[[], Any]], AbstractContextManager[None]] = attrs.field(
        default=lambda action: contextlib.nullcontext(), kw_only=True, repr=False
    )

    @property
    def output_format(self) -> Optional[str]:
        """What the command prints on ``stdout``: ``"text"`` (a transcript to read),
        ``"jsonl"`` (data: JSON lines only), or None when it prints nothing
        there (``--quiet``, ``-p no:output``, a command without ``--format``).

        A plugin's own lines go to ``stdout`` only when this is not
        ``"jsonl"``; to ``stderr`` is always safe.
        """
        if getattr(self.options, "quiet", False):
            return None
        output_format = getattr(self.options, "format", None)
        return output_format if isinstance(output_format, str) else None

    def fail(self, status: int, message: str) -> None:
        """Report that the run is incomplete: exit with ``status``, print ``message``."""
        self.failures.append((status, message))

    def add_cleanup(self, cleanup: Callable[[], Any], name: Optional[str] = None) -> None:
        """Call ``cleanup()`` when the run ends; the last added runs first.

        ``name`` says whose cleanup failed, if it does (default: the
        function's own name).
        """
        label: str = name or getattr(cleanup, "__qualname__", None) or repr(cleanup)
        self._cleanups.append((label, cleanup))

    def register(
        self, plugin: Any, name: Optional[str] = None, close: Optional[Callable[[], Any]] = None
    ) -> Any:
        """Register ``plugin`` for this run only: at its end, unregister it, then call ``close``.

        Returns ``plugin``.  The plugin sees no event once ``close`` runs, so
        ``close`` may flush and release what the plugin holds.
        """
        registered_as = self.plugin_manager.register(plugin, name=name)
        label = name or registered_as or type(plugin).__name__

        def unregister() -> None:
            self.plugin_manager.unregister(plugin)
            if close is not None:
                close()

        self.add_cleanup(unregister, name=label)
        return plugin

    def stopping(self, action: Callable[[], Any]) -> AbstractContextManager[None]:
        """While the ``with`` block runs, a signal that ends the command calls ``action()``.

        For a plugin's own command (``livecall_register_commands``) that waits:
        SIGINT, SIGTERM or SIGHUP then runs ``action`` on a thread of its own,
        instead of raising an exception wherever the main thread is (inside a
        ``threading`` wait, that can leave a lock taken and hang the process).
        ``action`` must make the block return, and be safe to call from any
        thread: ``stop_event.set``, a client's ``close``.  When the function
        returns, the command still exits with the signal's status (130, 143,
        129).  Outside the ``livecall`` command, the block just runs.
        """
        return self._stopping(action)

    def close(self) -> None:
        """Run the cleanups, last added first; idempotent.

        A cleanup that raises does not stop the others: it is logged and
        the run fails (``ExitStatus.FAILURE``), as a failing
        ``livecall_unconfigure`` does.  The
        ``livecall`` command calls this after ``livecall_unconfigure``;
        code that drives a ``Config`` itself calls it at the end of its run.
        """
        steps: list[Step] = [(name, fn, ()) for name, fn in reversed(self._cleanups)]
        self._cleanups = []
        for failure in call_each(steps, "cleanup", {}):
            log.info("%s", failure, exc_info=failure.__cause__)  # the traceback, for -v
            self.fail(ExitStatus.FAILURE, str(failure))
