"""Event keys: the same on every worker that sees the same thing, different otherwise."""

from datetime import datetime, timedelta, timezone

import livecall
from livecall_redis import EventKeys

PHONIC = livecall.Call(provider="phonic", id="conv_1")
HIYA = livecall.Call(provider="hiya", id="call_0123456789abcdef")
EARLY = datetime(2025, 7, 30, 23, 45, tzinfo=timezone.utc)
LATE = EARLY + timedelta(seconds=5)


def keys_of(keys: EventKeys, call: livecall.Call, *events: livecall.Event) -> list[str]:
    return [keys.key(call, event, livecall.to_record(call, event)) for event in events]


def snapshot(*items: livecall.ConversationItem, at: datetime = EARLY) -> livecall.ConversationUpdated:
    return livecall.ConversationUpdated(livecall.Conversation(id="conv_1", items=items), received_at=at)


def line(text: str, index: int, at: datetime = EARLY) -> livecall.Transcript:
    return livecall.Transcript(text=text, role="user", item_idx=index, received_at=at)


def test_two_workers_seeing_the_same_phonic_snapshot_and_line_give_the_same_keys():
    item = livecall.ConversationItem(id="item_a", item_idx=0, text="Hello")
    first = keys_of(EventKeys("worker-1"), PHONIC, snapshot(item), line("Hello", 0))
    second = keys_of(EventKeys("worker-2"), PHONIC, snapshot(item, at=LATE), line("Hello", 0, at=LATE))
    assert first == second


def test_a_phonic_line_is_keyed_by_its_item_id_when_it_has_one_and_by_its_text():
    keys = EventKeys("w")
    with_id = keys_of(keys, PHONIC, snapshot(livecall.ConversationItem(id="item_a", item_idx=0, text="Hi")))
    a = keys_of(keys, PHONIC, line("Hi", 0))
    keys_of(keys, PHONIC, snapshot(livecall.ConversationItem(id="item_b", item_idx=0, text="Hi")))
    b = keys_of(keys, PHONIC, line("Hi", 0))
    keys_of(keys, PHONIC, snapshot(livecall.ConversationItem(item_idx=0, text="Hi")))
    no_id = keys_of(keys, PHONIC, line("Hi", 0))
    changed = keys_of(keys, PHONIC, line("Hi there", 0))
    assert len({a[0], b[0], no_id[0], changed[0]}) == 4
    assert with_id[0].startswith("conversation_updated:")


def test_a_hiya_line_with_an_offset_has_one_key_and_one_without_a_key_per_watch():
    said = livecall.Transcript(text="Hi", role="other", offset=4.1)
    unplaced = livecall.Transcript(text="Hi", role="other")
    first = keys_of(EventKeys("worker-1"), HIYA, said, unplaced)
    second = keys_of(EventKeys("worker-2"), HIYA, said, unplaced)
    assert first[0] == second[0]
    assert first[1] != second[1]


def test_what_one_worker_alone_saw_is_never_taken_for_a_duplicate():
    reconnecting = livecall.Reconnecting(attempt=1, delay=0.5, reason="closed with code 1006")
    keys = EventKeys("w")
    assert len(set(keys_of(keys, HIYA, reconnecting, reconnecting))) == 2


def test_a_call_start_is_keyed_by_its_content_not_its_arrival():
    started = livecall.CallStarted(phone="+15551234567", timestamp=EARLY, received_at=EARLY)
    again = livecall.CallStarted(phone="+15551234567", timestamp=EARLY, received_at=LATE)
    assert keys_of(EventKeys("a"), HIYA, started) == keys_of(EventKeys("b"), HIYA, again)
