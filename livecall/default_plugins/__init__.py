"""Plugins that ship with livecall, written like any third-party plugin.

Each is registered under its name in ``livecall.plugins.DEFAULT_PLUGINS``,
so ``-p no:NAME`` turns it off.
"""
