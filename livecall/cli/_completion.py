"""Tab completion of commands and options, when the optional ``argcomplete`` is installed.

``pip install 'livecall[completion]'`` installs it; the shell then asks
``livecall`` itself what may follow what was typed, so the completions are
always those of this parser, plugins' commands and options included.  Only
such a request (``$_ARGCOMPLETE`` set by the shell's hook) imports the
library: an ordinary run pays nothing for it.
"""

import argparse
import importlib
import os

__all__ = ["completion"]


def completion(parser: argparse.ArgumentParser) -> None:
    """When the shell asks for completions, print them for ``parser`` and end the process.

    Returns at once otherwise, and when ``argcomplete`` is not installed: the
    shell then completes nothing, as without the hook.
    """
    if "_ARGCOMPLETE" not in os.environ:
        return
    try:
        argcomplete = importlib.import_module("argcomplete")
    except ImportError:
        return
    argcomplete.autocomplete(parser)
