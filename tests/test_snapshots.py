"""TranscriptTracker: transcript lines from Phonic's whole-conversation snapshots."""

import json
from datetime import datetime, timezone

from livecall._snapshots import UNKNOWN_ROLE, TranscriptTracker
from livecall.events import Conversation, ConversationItem, Role, Transcript
from livecall.phonic import PHONIC

FIRST = datetime(2025, 7, 30, 23, 45, 1, tzinfo=timezone.utc)
LATER = datetime(2025, 7, 30, 23, 45, 9, tzinfo=timezone.utc)


def snapshot(*items):
    return Conversation(id="conv", items=tuple(items))


def said(lines):
    return [(line.text, line.role, line.item_idx) for line in lines]


def test_each_item_with_text_is_emitted_once_in_order():
    tracker = TranscriptTracker()
    conversation = snapshot(
        ConversationItem(id="a", item_idx=0, role="assistant", text="Hello!"),
        ConversationItem(id="b", item_idx=1, role="user", text="Hi."),
    )
    lines = tracker.new_lines(conversation, FIRST)
    assert lines == [
        Transcript(text="Hello!", role=Role.ASSISTANT, item_idx=0),
        Transcript(text="Hi.", role=Role.USER, item_idx=1),
    ]
    assert all(line.received_at is FIRST and line.offset is None for line in lines)
    assert tracker.new_lines(conversation, LATER) == []


def test_only_new_and_changed_items_are_emitted():
    tracker = TranscriptTracker()
    hello = ConversationItem(id="a", item_idx=0, role="assistant", text="Hello!")
    tracker.new_lines(
        snapshot(hello, ConversationItem(id="b", item_idx=1, role="user", text="I need")), FIRST
    )
    lines = tracker.new_lines(
        snapshot(
            hello,
            ConversationItem(id="b", item_idx=1, role="user", text="I need a booking"),
            ConversationItem(id="c", item_idx=2, role="assistant", text="Sure."),
        ),
        LATER,
    )
    assert said(lines) == [("I need a booking", Role.USER, 1), ("Sure.", Role.ASSISTANT, 2)]
    assert all(line.received_at is LATER for line in lines)


def test_growing_live_transcript_is_emitted_at_each_step():
    tracker = TranscriptTracker()
    steps = ["I", "I need", "I need help"]
    emitted = [
        said(
            tracker.new_lines(
                snapshot(ConversationItem(item_idx=0, role="user", live_transcript=text)), FIRST
            )
        )
        for text in steps + ["I need help"]
    ]
    assert emitted == [[(text, Role.USER, 0)] for text in steps] + [[]]


def test_items_without_text_wait_until_they_have_some():
    tracker = TranscriptTracker()
    assert tracker.new_lines(snapshot(ConversationItem(id="a", role="user")), FIRST) == []
    assert tracker.new_lines(snapshot(ConversationItem(id="a", role="user", live_transcript="")), FIRST) == []
    lines = tracker.new_lines(
        snapshot(ConversationItem(id="a", role="user", post_call_transcript="Hi.")), FIRST
    )
    assert said(lines) == [("Hi.", Role.USER, 0)]


def test_text_takes_precedence_over_live_and_post_call_transcripts():
    item = ConversationItem(id="a", text="typed", live_transcript="live", post_call_transcript="post")
    assert TranscriptTracker().new_lines(snapshot(item), FIRST)[0].text == "typed"
    item = ConversationItem(id="a", live_transcript="live", post_call_transcript="post")
    assert TranscriptTracker().new_lines(snapshot(item), FIRST)[0].text == "live"


def test_items_without_id_are_told_apart_by_index_then_position():
    tracker = TranscriptTracker()
    by_index = [ConversationItem(item_idx=5, text="five"), ConversationItem(item_idx=6, text="six")]
    by_position = [ConversationItem(text="first"), ConversationItem(text="second")]
    assert said(tracker.new_lines(snapshot(*by_index, *by_position), FIRST)) == [
        ("five", UNKNOWN_ROLE, 5),
        ("six", UNKNOWN_ROLE, 6),
        ("first", UNKNOWN_ROLE, 2),
        ("second", UNKNOWN_ROLE, 3),
    ]
    assert tracker.new_lines(snapshot(*by_index, *by_position), LATER) == []
    # an index equal to a position is still another item
    assert said(tracker.new_lines(snapshot(ConversationItem(item_idx=2, text="first")), LATER)) == [
        ("first", UNKNOWN_ROLE, 2)
    ]


def test_roles_known_free_and_missing():
    items = [
        ConversationItem(id="a", role="assistant", text="1"),
        ConversationItem(id="b", role="supervisor", text="2"),
        ConversationItem(id="c", text="3"),
    ]
    roles = [line.role for line in TranscriptTracker().new_lines(snapshot(*items), FIRST)]
    assert roles == [Role.ASSISTANT, "supervisor", "unknown"]
    assert [type(role) for role in roles] == [Role, str, str]


def test_reconnect_snapshot_emits_nothing_already_emitted():
    # The client keeps one tracker per watch; after a reconnect a new socket
    # (and here a new decoder) sends the whole conversation again.
    message = {
        "type": "conversation-updated",
        "conversation": {
            "id": "conv",
            "items": [
                {"id": "a", "item_idx": 0, "role": "assistant", "text": "Hello!"},
                {"item_idx": 1, "role": "user", "live_transcript": "Hi"},
            ],
        },
    }
    tracker = TranscriptTracker()
    before = PHONIC.new_decoder().decode(json.dumps(message), FIRST)
    assert len(tracker.new_lines(before.conversation, FIRST)) == 2
    message["conversation"]["items"].append(
        {"id": "c", "item_idx": 2, "role": "assistant", "text": "Welcome."}
    )
    after = PHONIC.new_decoder().decode(json.dumps(message), LATER)
    assert said(tracker.new_lines(after.conversation, LATER)) == [("Welcome.", Role.ASSISTANT, 2)]
