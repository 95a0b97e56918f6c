"""Plugins set up before a run and flushed after it, one plugin at a time.

pluggy stops at the first implementation that raises.  Here every plugin gets
its turn: a plugin that fails to flush must not cost another its data, and
every plugin that failed to configure is named, not just the first.
"""

import contextlib
import logging
from collections.abc import Iterator

from .._exit_status import ExitStatus
from .._isolation import call_plugins
from ..config import Config
from ..errors import PluginError
from ._logging import short_credentials
from ._signals import signals

__all__ = ["configured"]

log = logging.getLogger("livecall.cli")


@contextlib.contextmanager
def configured(config: Config) -> Iterator[Config]:
    """``livecall_configure`` on entry, ``livecall_unconfigure`` on the way out, always,
    neither of them cut short by a signal.

    A plugin whose configure failed is not unconfigured, and the run does not
    start: the first failure is raised, the others are logged.  A plugin that
    fails to unconfigure is logged and makes the run fail (``Config.fail``).
    The run's cleanups (``Config.register``, ``Config.add_cleanup``) come last.
    The command line is settled by then: the warning of a too short
    credential, held back until now, is said first.
    """
    short_credentials.release()
    pm = config.plugin_manager
    refused: list[PluginError] = []
    try:
        with signals.deferred():
            refused = call_plugins(pm, "livecall_configure", config=config)
        for failure in refused[1:]:
            log.error("%s", failure, exc_info=failure.__cause__)
        if refused:
            raise refused[0]
        yield config
    finally:
        skip = [failure.plugin for failure in refused]
        with signals.deferred():
            for failure in call_plugins(pm, "livecall_unconfigure", skip=skip, config=config):
                log.info("%s", failure, exc_info=failure.__cause__)  # the traceback, for -v
                config.fail(ExitStatus.FAILURE, str(failure))
            config.close()
