"""Files that hold transcripts: personal data, so readable by their owner only."""

import os
from typing import Union

__all__ = ["owner_only"]


def owner_only(path: Union[str, "os.PathLike[str]"], flags: int) -> int:
    """An ``opener`` for ``open()`` that creates the file readable and writable by its owner only.

    ``open(path, "a", opener=livecall.owner_only)``: a new file gets mode 0600
    whatever the umask; an existing file keeps the mode it has.
    """
    return os.open(path, flags, 0o600)
