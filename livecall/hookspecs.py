"""The hooks livecall calls; plugins implement them with ``@livecall.hookimpl``."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("livecall")
hookimpl = HookimplMarker("livecall")


@hookspec
def livecall_addoption(parser):
    """Add command line options for ``livecall watch`` to an argparse parser."""


@hookspec
def livecall_register_commands(subparsers):
    """Add subcommands to ``livecall`` (argparse subparsers); each sets ``func(config)`` -> exit status."""


@hookspec
def livecall_configure(config):
    """Set up from the parsed options before any call is watched."""


@hookspec
def livecall_call_start(call):
    """A watch connected for the first time; ``call`` lives until ``livecall_call_end``."""


@hookspec
def livecall_event(call, event):
    """Every event of the call, in arrival order, transcripts and errors included."""


@hookspec
def livecall_transcript(call, transcript):
    """A transcript line: Hiya's own, or one derived from a Phonic snapshot."""


@hookspec
def livecall_reconnect(call, reconnecting):
    """The connection was lost and the client will try again."""


@hookspec
def livecall_error(call, error):
    """A plugin or callback raised, or the watch failed; the stream goes on or ends cleanly."""


@hookspec
def livecall_call_end(call, reason):
    """The watch is over for ``reason`` (an ``EndReason``); the last hook of a call."""


@hookspec
def livecall_unconfigure(config):
    """Flush and release what ``livecall_configure`` set up; the process is about to exit."""
