"""The codec: provider frames to typed events, and events to JSON-lines records.

One cattrs converter does both directions (see ``_converter``); decoders add
what is per watch (Phonic's item cache), and never raise.
"""

from ._decoder import Decoder
from ._record import to_json, to_record

__all__ = ["Decoder", "to_json", "to_record"]
