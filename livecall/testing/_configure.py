"""A plugin set up from command-line arguments, as ``livecall watch`` sets it up, for its tests."""

import argparse
from typing import Any, Optional

from ..config import Config
from ..plugins import create_plugin_manager

__all__ = ["configure"]


def configure(plugin: Any, *argv: str, name: Optional[str] = None) -> Config:
    """``plugin`` configured from the command-line arguments ``argv``, without a call.

    The options ``plugin`` adds in ``livecall_addoption`` parse ``argv``
    (argparse exits on a bad one, as the command does), and
    ``livecall_configure`` runs on a manager holding ``plugin`` and the
    built-ins, installed plugins left out.  The manager is
    ``config.plugin_manager``: hand it to a client as ``plugin_manager=``.
    End the run with ``config.close()``, which releases what the plugin tied
    to it (``Config.register``, ``Config.add_cleanup``), after the plugin's
    own ``livecall_unconfigure`` if it has one, as the command does.  What
    the plugin reported with ``Config.fail`` is in ``config.failures``.
    Errors from ``livecall_configure`` are raised.
    """
    pm = create_plugin_manager(autoload=False)
    pm.register(plugin, name=name)
    parser = argparse.ArgumentParser(prog="livecall watch")
    addoption = getattr(plugin, "livecall_addoption", None)
    if addoption is not None:
        addoption(parser=parser)
    config = Config(options=parser.parse_args(argv), plugin_manager=pm)
    pm.hook.livecall_configure(config=config)
    unconfigure = getattr(plugin, "livecall_unconfigure", None)
    if unconfigure is not None:  # added last, so run first: before what configure tied to the run
        config.add_cleanup(lambda: unconfigure(config=config), name=f"{name or plugin} unconfigure")
    return config
