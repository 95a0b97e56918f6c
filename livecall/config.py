"""What ``livecall_configure`` and ``livecall_unconfigure`` receive."""

import argparse
import sys
from typing import TextIO

import attrs
import pluggy

__all__ = ["Config"]


@attrs.define(eq=False)
class Config:
    """One run of livecall: its parsed options and the plugins taking part.

    ``options`` holds every command line option, the ones plugins added
    through ``livecall_addoption`` included.  ``stdout`` is where output for
    a person or a program goes.  A plugin whose work did not complete (a
    webhook that could not deliver everything, say) calls ``fail()``; the
    command then exits with that status once the call itself went well.
    """

    options: argparse.Namespace
    plugin_manager: pluggy.PluginManager = attrs.field(repr=False)
    stdout: TextIO = attrs.field(factory=lambda: sys.stdout, repr=False)
    failures: list[tuple[int, str]] = attrs.field(factory=list)

    def fail(self, status: int, message: str) -> None:
        """Report that the run is incomplete: exit with ``status``, print ``message``."""
        self.failures.append((status, message))
