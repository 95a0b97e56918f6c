"""The codec: provider frames to typed events, and events to JSON-lines records.

One cattrs converter does both directions (see ``_converter``); decoders add
what is per watch (Phonic's item cache), and never raise.
"""

from ._converter import HiyaMessage, PhonicMessage
from ._decoder import Decoder, PhonicDecoder
from ._record import to_json, to_record
from ._server_words import server_words
from ._words import SNAPSHOT_WORDS, without_words

__all__ = [
    "SNAPSHOT_WORDS",
    "Decoder",
    "HiyaMessage",
    "PhonicDecoder",
    "PhonicMessage",
    "server_words",
    "to_json",
    "to_record",
    "without_words",
]
