"""Where a server puts the text of an error, in a message or a refused handshake's body."""

from typing import Any, Optional

__all__ = ["server_words"]


def server_words(document: Any) -> Optional[str]:
    """The first non-empty string among a JSON object's error texts.

    An error whose only text is empty gives ``""``; one with none gives None.

    Providers put it in different places: Hiya sends ``description``, Phonic
    ``message`` or ``error.message``, and some servers make ``error`` itself
    the text.  Error messages on the stream and refused handshakes are read
    the same way, so one body is always reported the same way.
    """
    if document.__class__ is not dict:
        return None
    nested = document.get("error")
    candidates = (
        document.get("description"),
        document.get("message"),
        nested.get("message") if nested.__class__ is dict else nested,
    )
    texts = [text for text in candidates if text.__class__ is str]
    return next((text for text in texts if text), "" if texts else None)
