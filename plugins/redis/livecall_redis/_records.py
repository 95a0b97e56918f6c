"""Each event's JSON for the events stream, made once; a Phonic snapshot's mostly reused.

The entry holds exactly what ``livecall.to_json`` makes of the event (its
record as JSON), redacted.  Phonic sends the whole conversation in every
snapshot, and all but its newest turns are the very objects of the snapshot
before (the decoder keeps the turns that did not change): each turn's JSON,
redacted, is kept for the next snapshot, and only the conversation's own
fields and the turns new or changed are made and redacted again.  The text
put together is the same, character for character, as the whole record's
``json.dumps`` redacted (a secret found only across two pieces would have
to hold the brackets and the comma between them).

The record returned beside the text serves the event's key: for a snapshot
it holds the conversation without its turns, so the key must come from the
text, which :func:`keyed_from_text` checks here.
"""

import json
import uuid
from typing import Any, Optional

import attrs

import livecall

from ._keys import keyed_from_text

__all__ = ["EventTexts"]

#: Stands for the turns in the conversation's JSON until they are put in: unguessable, so no
#: server can send it.
_MARK = f"\x00turns-{uuid.uuid4().hex}\x00"
_MARKED = json.dumps([_MARK])


class EventTexts:
    """The JSON of each event of one call, in order (one call's hooks run one at a time)."""

    def __init__(self) -> None:
        #: The turns of the call's last snapshot, kept alive so that their ids stay theirs, and
        #: their JSON by id (ints to strings: a dict the garbage collector need not look at).
        self._turns: tuple[livecall.ConversationItem, ...] = ()
        self._texts: dict[int, str] = {}

    def make(self, call: livecall.Call, event: livecall.Event) -> tuple[dict[str, Any], str]:
        """The event's record and its JSON, redacted: what the events stream gets."""
        if type(event) is livecall.ConversationUpdated and event.conversation.items:
            made = self._snapshot(call, event)
            if made is not None:
                return made
        record = livecall.to_record(call, event)
        return record, livecall.redact(json.dumps(record))

    def _snapshot(
        self, call: livecall.Call, event: livecall.ConversationUpdated
    ) -> Optional[tuple[dict[str, Any], str]]:
        """A snapshot's record without its turns and its whole JSON; None where it would not be
        the whole record's, character for character."""
        conversation = event.conversation
        shell = livecall.to_record(call, _with_turns(event, ()))
        if not isinstance(shell.get("conversation"), dict) or "items" not in shell["conversation"]:
            return None
        shell["conversation"]["items"] = [_MARK]
        text = livecall.redact(json.dumps(shell))
        if text.count(_MARKED) != 1 or not keyed_from_text(shell, text):
            return None
        # Every turn of the last snapshot is alive (held in self._turns): a turn of this one with
        # the id of one of them is that very turn.
        texts: dict[int, str] = {}
        for turn in conversation.items:
            known = self._texts.get(id(turn))
            if known is None:
                record = livecall.to_record(call, _with_turns(event, (turn,)))
                known = livecall.redact(json.dumps(record["conversation"]["items"][0]))
            texts[id(turn)] = known
        self._turns, self._texts = conversation.items, texts
        return shell, text.replace(
            _MARKED, f"[{', '.join(texts[id(turn)] for turn in conversation.items)}]", 1
        )


def _with_turns(
    event: livecall.ConversationUpdated, turns: tuple[livecall.ConversationItem, ...]
) -> livecall.ConversationUpdated:
    return attrs.evolve(event, conversation=attrs.evolve(event.conversation, items=turns))
