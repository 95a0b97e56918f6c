"""SnapshotTracker: transcript lines and tool calls from Phonic's whole-conversation snapshots."""

import json
from datetime import datetime, timezone

import phonic_sdk as sdk
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecall import Call
from livecall.events import Conversation, ConversationItem, Role, ToolCall, Transcript
from livecall.phonic import PHONIC
from livecall.phonic._snapshots import UNKNOWN_ROLE, SnapshotTracker, update_call

FIRST = datetime(2025, 7, 30, 23, 45, 1, tzinfo=timezone.utc)
LATER = datetime(2025, 7, 30, 23, 45, 9, tzinfo=timezone.utc)


def snapshot(*items):
    return Conversation(id="conv", items=tuple(items))


def said(lines):
    return [(line.text, line.role, line.item_idx) for line in lines]


def test_each_item_with_text_is_emitted_once_in_order():
    tracker = SnapshotTracker()
    conversation = snapshot(
        ConversationItem(id="a", item_idx=0, role="assistant", text="Hello!"),
        ConversationItem(id="b", item_idx=1, role="user", text="Hi."),
    )
    lines = tracker.new_events(conversation, FIRST)
    assert lines == [
        Transcript(text="Hello!", role=Role.ASSISTANT, item_idx=0, item_id="a"),
        Transcript(text="Hi.", role=Role.USER, item_idx=1, item_id="b"),
    ]
    assert all(line.received_at is FIRST and line.offset is None for line in lines)
    assert tracker.new_events(conversation, LATER) == []


def test_only_new_and_changed_items_are_emitted():
    tracker = SnapshotTracker()
    hello = ConversationItem(id="a", item_idx=0, role="assistant", text="Hello!")
    tracker.new_events(
        snapshot(hello, ConversationItem(id="b", item_idx=1, role="user", text="I need")), FIRST
    )
    lines = tracker.new_events(
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
    tracker = SnapshotTracker()
    steps = ["I", "I need", "I need help"]
    emitted = [
        said(
            tracker.new_events(
                snapshot(ConversationItem(item_idx=0, role="user", live_transcript=text)), FIRST
            )
        )
        for text in steps + ["I need help"]
    ]
    assert emitted == [[(text, Role.USER, 0)] for text in steps] + [[]]


def test_items_without_text_wait_until_they_have_some():
    tracker = SnapshotTracker()
    assert tracker.new_events(snapshot(ConversationItem(id="a", role="user")), FIRST) == []
    assert (
        tracker.new_events(snapshot(ConversationItem(id="a", role="user", live_transcript="")), FIRST) == []
    )
    lines = tracker.new_events(
        snapshot(ConversationItem(id="a", role="user", post_call_transcript="Hi.")), FIRST
    )
    assert said(lines) == [("Hi.", Role.USER, 0)]


def test_text_takes_precedence_over_live_and_post_call_transcripts():
    item = ConversationItem(id="a", text="typed", live_transcript="live", post_call_transcript="post")
    assert SnapshotTracker().new_events(snapshot(item), FIRST)[0].text == "typed"
    item = ConversationItem(id="a", live_transcript="live", post_call_transcript="post")
    assert SnapshotTracker().new_events(snapshot(item), FIRST)[0].text == "live"


def test_items_without_id_are_told_apart_by_index_then_position():
    tracker = SnapshotTracker()
    by_index = [ConversationItem(item_idx=5, text="five"), ConversationItem(item_idx=6, text="six")]
    by_position = [ConversationItem(text="first"), ConversationItem(text="second")]
    assert said(tracker.new_events(snapshot(*by_index, *by_position), FIRST)) == [
        ("five", UNKNOWN_ROLE, 5),
        ("six", UNKNOWN_ROLE, 6),
        ("first", UNKNOWN_ROLE, 2),
        ("second", UNKNOWN_ROLE, 3),
    ]
    assert tracker.new_events(snapshot(*by_index, *by_position), LATER) == []
    # an index equal to a position is still another item
    assert said(tracker.new_events(snapshot(ConversationItem(item_idx=2, text="first")), LATER)) == [
        ("first", UNKNOWN_ROLE, 2)
    ]


def test_roles_known_free_and_missing():
    items = [
        ConversationItem(id="a", role="assistant", text="1"),
        ConversationItem(id="b", role="supervisor", text="2"),
        ConversationItem(id="c", text="3"),
    ]
    roles = [line.role for line in SnapshotTracker().new_events(snapshot(*items), FIRST)]
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
    tracker = SnapshotTracker()
    before = PHONIC.new_decoder().decode(json.dumps(message), FIRST)
    assert len(tracker.new_events(before.conversation, FIRST)) == 2
    message["conversation"]["items"].append(
        {"id": "c", "item_idx": 2, "role": "assistant", "text": "Welcome."}
    )
    after = PHONIC.new_decoder().decode(json.dumps(message), LATER)
    assert said(tracker.new_events(after.conversation, LATER)) == [("Welcome.", Role.ASSISTANT, 2)]


# --- payloads shaped like the SDK's models, through the decoder ---------------------


class Watch:
    """One decoder and one tracker, as a PhonicClient has for a watch."""

    def __init__(self):
        self.decoder = PHONIC.new_decoder()
        self.tracker = SnapshotTracker()

    def see(self, *items, **conversation):
        message = sdk.update(sdk.conversation(*items, **conversation))
        event = self.decoder.decode(json.dumps(message), FIRST)
        assert event.kind == "conversation_updated", getattr(event, "reason", event)
        return self.tracker.new_events(event.conversation, FIRST)


def lines_of(events):
    return [
        (line.item_idx, line.text, line.revised, line.redacted) for line in events if type(line) is Transcript
    ]


def test_a_turn_redacted_before_it_is_first_seen_has_a_line():
    # Defect 2: live_transcript null, words only in redacted_transcript.
    redacted = sdk.item(0, "user", None, redacted_transcript="My number is [PHONE NUMBER].")
    events = Watch().see(redacted)
    assert lines_of(events) == [(0, "My number is [PHONE NUMBER].", False, True)]
    assert events[0].item_id == "conv_sdk-0"


def test_a_turn_redacted_after_its_line_went_out_yields_a_redaction():
    # Defect 2: the revision carries the redacted words and says it is a redaction.
    watch = Watch()
    assert lines_of(watch.see(sdk.item(0, "user", "My number is 555 0100."))) == [
        (0, "My number is 555 0100.", False, False)
    ]
    redacted = sdk.item(0, "user", None, redacted_transcript="My number is [PHONE NUMBER].")
    assert lines_of(watch.see(redacted)) == [(0, "My number is [PHONE NUMBER].", True, True)]
    assert watch.see(redacted) == []


def test_redacted_words_come_after_every_other_transcript():
    both = sdk.item(0, "user", None, post_call_transcript="Post.", redacted_transcript="[REDACTED].")
    assert lines_of(Watch().see(both)) == [(0, "Post.", False, False)]


def test_an_id_appearing_late_does_not_emit_the_turn_again():
    # Defect 3: first only item_idx, then the id as well.
    watch = Watch()
    first = watch.see(sdk.item(0, "assistant", "Hello!", drop=("id",)))
    assert [(line.item_idx, line.item_id) for line in first] == [(0, None)]
    assert watch.see(sdk.item(0, "assistant", "Hello!")) == []
    later = watch.see(sdk.item(0, "assistant", "Hello! Welcome."))
    assert [(line.item_idx, line.item_id, line.revised) for line in later] == [(0, "conv_sdk-0", True)]


@pytest.mark.parametrize(
    "twins",
    [
        [sdk.item(0, "user", "Yes."), sdk.item(1, "user", "No.", id="conv_sdk-0")],  # same id
        [sdk.item(3, "user", "Yes.", drop=("id",)), sdk.item(3, "user", "No.", drop=("id",))],  # same index
    ],
)
def test_duplicate_ids_or_indexes_are_emitted_once_each(twins):
    # Defect 3: they used to be re-emitted on every snapshot, forever.
    watch = Watch()
    assert [line.text for line in watch.see(*twins)] == ["Yes.", "No."]
    for _ in range(3):
        assert watch.see(*twins) == []
    assert lines_of(watch.see(twins[0], dict(twins[1], live_transcript="No, thanks."))) == [
        (twins[1]["item_idx"], "No, thanks.", True, False)
    ]


def test_removing_an_item_without_id_or_index_re_emits_nothing():
    # Defect 3: later turns used to come again under shifted indexes.
    anonymous = [sdk.item(n, "user", f"turn {n}", drop=("id", "item_idx")) for n in range(4)]
    watch = Watch()
    assert [line.item_idx for line in watch.see(*anonymous)] == [0, 1, 2, 3]
    assert watch.see(anonymous[0], *anonymous[2:]) == []
    grown = dict(anonymous[3], live_transcript="turn 3, grown")
    assert lines_of(watch.see(anonymous[0], anonymous[2], grown)) == [(3, "turn 3, grown", True, False)]


def test_removing_items_with_ids_re_emits_nothing():
    items = [sdk.item(n, "user", f"turn {n}") for n in range(3)]
    watch = Watch()
    assert len(watch.see(*items)) == 3
    assert watch.see(items[0], items[2]) == []


def test_tool_calls_are_events_when_they_appear_and_when_they_change():
    watch = Watch()
    call = sdk.tool_call()
    turn = sdk.item(1, "assistant", "Let me book that.", tool_calls=[call])
    events = watch.see(sdk.item(0, "user", "Tuesday at 10."), turn)
    assert [type(event) for event in events] == [Transcript, Transcript, ToolCall]
    tool = events[-1]
    assert (tool.tool_call_id, tool.name, tool.item_idx, tool.item_id, tool.revised) == (
        "tc_1",
        "book_appointment",
        1,
        "conv_sdk-1",
        False,
    )
    assert tool.arguments == {"day": "Tuesday", "time": "10:00"} and tool.result is None
    assert watch.see(sdk.item(0, "user", "Tuesday at 10."), turn) == []
    done = dict(turn, tool_calls=[dict(call, response_status_code=200.0, response_body={"ok": True})])
    (changed,) = watch.see(sdk.item(0, "user", "Tuesday at 10."), done)
    assert (changed.status_code, changed.result, changed.revised) == (200.0, {"ok": True}, True)
    assert not hasattr(changed, "endpoint_headers")


def test_spec_tool_call_ids_are_events_too():
    watch = Watch()
    turn = sdk.item(0, "assistant", "Checking.", drop=("tool_calls",), tool_call_ids=["tc_9", 5])
    events = watch.see(turn)
    assert [(type(e).__name__, getattr(e, "tool_call_id", None)) for e in events] == [
        ("Transcript", None),
        ("ToolCall", "tc_9"),
    ]
    assert watch.see(turn) == []


@pytest.mark.parametrize(
    "origin, call_info, phone",
    [
        ("inbound", {"from_phone_number": "+15551230000", "to_phone_number": "+15559870000"}, "+15551230000"),
        (
            "outbound",
            {"from_phone_number": "+15559870000", "to_phone_number": "+15551230000"},
            "+15551230000",
        ),
        ("telephony-inbound", {"from_phone_number": "anonymous", "to_phone_number": "+15559870000"}, None),
        ("web", {"from_phone_number": "+15551230000", "to_phone_number": "+15559870000"}, "+15551230000"),
    ],
)
def test_the_call_learns_both_numbers_and_which_is_the_other_party(origin, call_info, phone):
    # Defect 6: phone was from_phone_number, the agent's own number on an outbound call.
    conversation = (
        PHONIC.new_decoder()
        .decode(json.dumps(sdk.update(sdk.conversation(origin=origin, call_info=call_info))), FIRST)
        .conversation
    )
    call = Call("phonic", "conv_sdk")
    update_call(call, conversation)
    assert (call.from_phone, call.to_phone) == (call_info["from_phone_number"], call_info["to_phone_number"])
    assert call.direction == {
        "inbound": "inbound",
        "outbound": "outbound",
        "telephony-inbound": "inbound",
    }.get(origin)
    assert call.phone == phone


def test_the_spec_shape_gives_the_numbers_at_the_top_level():
    conversation = Conversation(
        id="c", origin="outbound", from_phone_number="+1555000", to_phone_number="+1555999"
    )
    call = Call("phonic", "c")
    update_call(call, conversation)
    assert (call.from_phone, call.to_phone, call.direction, call.phone) == (
        "+1555000",
        "+1555999",
        "outbound",
        "+1555999",
    )


# --- any stream of snapshots ---------------------------------------------------------

few_words = st.none() | st.sampled_from(["Hi.", "Hi there.", "Yes.", "[NAME]."])
odd_items = st.builds(
    lambda item_id, item_idx, live, redacted, calls: ConversationItem(
        id=item_id,
        item_idx=item_idx,
        role="user",
        live_transcript=live,
        redacted_transcript=redacted,
        extra={"tool_calls": calls},
    ),
    st.none() | st.sampled_from(["a", "b"]),  # few ids and indexes: repeats, late ids, removals
    st.none() | st.integers(0, 2),
    few_words,
    few_words,
    st.lists(
        st.fixed_dictionaries({"id": st.sampled_from(["t1", "t2"]), "response_body": few_words}), max_size=2
    ),
)
streams = st.lists(
    st.lists(odd_items, max_size=5).map(lambda items: snapshot(*items)), min_size=1, max_size=6
)


@settings(derandomize=True, database=None, deadline=None, max_examples=300)
@given(streams)
def test_any_stream_loses_no_words_and_repeats_nothing(conversations):
    tracker = SnapshotTracker()
    said = []
    for conversation in conversations:
        events = tracker.new_events(conversation, FIRST)
        said.extend(event.text for event in events if type(event) is Transcript)
        assert tracker.new_events(conversation, LATER) == [], "a snapshot seen again adds nothing"
    words = {item.transcript_text for item in conversations[-1].items if item.transcript_text}
    assert words <= set(said), "every turn's words were delivered"


def test_zero_data_retention_reaches_the_call_and_stays_on():
    decoder = PHONIC.new_decoder()

    def snapshot_with(**fields):
        return decoder.decode(json.dumps(sdk.update(sdk.conversation(**fields))), FIRST).conversation

    call = Call("phonic", "conv_sdk")
    update_call(call, snapshot_with(data_retention_policy={"zero_data_retention": False}))
    assert call.zero_data_retention is False
    update_call(call, snapshot_with(data_retention_policy={"zero_data_retention": True}))
    assert call.zero_data_retention is True
    no_longer = {"data_retention_policy": {"zero_data_retention": False}}
    for later in (no_longer, {}, {"data_retention_policy": 7}):
        update_call(call, snapshot_with(**later))
        assert call.zero_data_retention is True, later
