"""The hooks livecall calls; plugins implement them with ``@livecall.hookimpl``."""

import argparse
from typing import Optional

from pluggy import HookimplMarker, HookspecMarker

from .call import Call, EndReason
from .config import Config
from .events import Event, Reconnecting, Transcript

hookspec = HookspecMarker("livecall")
hookimpl = HookimplMarker("livecall")


@hookspec
def livecall_addoption(parser: argparse.ArgumentParser) -> None:
    """Add command line options for ``livecall watch`` to an argparse parser."""


@hookspec
def livecall_register_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add subcommands to ``livecall`` (argparse subparsers); each sets ``func(config)`` -> exit status."""


@hookspec
def livecall_configure(config: Config) -> None:
    """Set up from the parsed options before any call is watched."""


@hookspec(firstresult=True)
def livecall_credential(provider: str, name: str) -> Optional[str]:
    """A fresh ``name`` credential for ``provider`` (``"hiya"``, ``"token"``); None: ask the next source.

    Asked on every connection attempt by ``livecall.CredentialSource``
    (``livecall watch``, ``livecall worker``), so tokens that expire are
    fetched again.
    """


@hookspec
def livecall_call_start(call: Call) -> None:
    """A watch connected for the first time; ``call`` lives until ``livecall_call_end``."""


@hookspec
def livecall_event(call: Call, event: Event) -> None:
    """Every event of the call, in arrival order, transcripts and errors included."""


@hookspec
def livecall_transcript(call: Call, transcript: Transcript) -> None:
    """A transcript line: Hiya's own, or one derived from a Phonic snapshot."""


@hookspec
def livecall_reconnect(call: Call, reconnecting: Reconnecting) -> None:
    """The connection was lost and the client will try again."""


@hookspec
def livecall_error(call: Call, error: BaseException) -> None:
    """A plugin or callback raised, or the watch failed; the stream goes on or ends cleanly."""


@hookspec
def livecall_call_end(call: Call, reason: EndReason) -> None:
    """The watch is over for ``reason`` (an ``EndReason``); the last hook of a call."""


@hookspec
def livecall_unconfigure(config: Config) -> None:
    """Flush and release what ``livecall_configure`` set up; the process is about to exit."""
