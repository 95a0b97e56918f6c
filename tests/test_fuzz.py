"""Hypothesis over the decoder, starting from what servers really send.

``tests/test_codec.py`` throws arbitrary bytes and arbitrary JSON at the
decoder.  Here every case starts as a valid message of one of the wire types,
then is mutated (fields dropped, retyped, added, its ``type`` swapped, its
text corrupted) so the faults land deep in the typed fields.  Properties:
the decoder returns an event (DecodeError included) and never raises; for
every message that decodes, the record's provider payload is the server's
JSON up to the documented normalisations, and decodes to the same event; a
Phonic decoder fed a stream decodes each frame as a fresh one would,
whatever came before.

Derandomized, so CI runs the same cases every time; each test records how
many it ran (the ``fuzz_cases`` figure).
"""

import copy
import json
import re
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livecall import Call, Event, to_json
from livecall._codec._values import Invalid, format_timestamp, parse_timestamp
from livecall.events import (
    Ack,
    CallEnded,
    CallStarted,
    ConversationEnded,
    ConversationUpdated,
    DecodeError,
    ScreeningEnded,
    ServerError,
    Transcript,
    UnknownMessage,
)
from livecall.hiya import HIYA
from livecall.phonic import PHONIC

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=400,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
RECEIVED = datetime(2025, 7, 30, 23, 45, 1, tzinfo=timezone.utc)
CALLS = {"hiya": Call("hiya", "call_fuzz"), "phonic": Call("phonic", "conv_fuzz")}

#: What each wire type decodes to, per provider: the spec's names, written out here
#: rather than read from the codec, so the test checks the codec against the spec.
CLASSES = {
    "hiya": {
        "event:start": CallStarted,
        "transcript": Transcript,
        "event:end": ScreeningEnded,
        "event:callEnd": CallEnded,
        "ack": Ack,
        "error": ServerError,
    },
    "phonic": {
        "conversation-updated": ConversationUpdated,
        "conversation-ended": ConversationEnded,
        "error": ServerError,
    },
}
WIRE_TYPES = {cls.kind: wire for classes in CLASSES.values() for wire, cls in classes.items()}
#: Record keys that the wire spells differently, per event kind.
WIRE_KEYS = {"transcript": {"text": "msg"}, "screening_ended": {"message": "msg"}, "ack": {"ack_id": "ackId"}}
#: Record keys that are livecall's own, for every kind and per kind (derived fields).
RECORD_ONLY = {"event", "provider", "call_id", "received_at", "extra"}
DERIVED = {"transcript": {"item_idx", "item_id", "revised", "redacted"}, "error": {"message"}}

# --- valid messages -------------------------------------------------------------------

texts = st.text(max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(texts, children, max_size=3),
    max_leaves=8,
)
numbers = st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
offsets = st.integers(-23 * 60, 23 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
timestamps = st.builds(
    lambda moment, zone, spec, z: moment.replace(tzinfo=zone).isoformat(timespec=spec).replace("+00:00", z),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1)),
    st.none() | offsets,
    st.sampled_from(["seconds", "milliseconds", "microseconds"]),
    st.sampled_from(["Z", "+00:00"]),
)
#: Timestamps a lenient field meets: valid ones, ones that overflow in UTC, ones that are not timestamps.
odd_timestamps = timestamps | st.sampled_from(
    ["9999-12-31T23:00:00-07:00", "0001-01-01T00:00:00+01:00", "soon"]
)


def lenient(proper):
    """A field livecall reads leniently: its proper values, null, or anything at all."""
    return st.none() | proper | json_values


#: Fields no version of the spec has: a newer server's, to be tolerated.
unknown_fields = {"x_future_field": json_values}

PROVIDERS = {provider.name: provider for provider in (HIYA, PHONIC)}


def message(wire_type, required, **optional):
    return st.fixed_dictionaries(
        {"type": st.just(wire_type), **required}, optional={**optional, **unknown_fields}
    )


hiya_messages = st.one_of(
    message("event:start", {"phone": texts, "timestamp": timestamps}),
    message(
        "transcript",
        {"msg": texts, "role": st.sampled_from(["assistant", "other", "user"])},
        offset=st.none() | numbers,
    ),
    message("event:end", {"msg": texts}),
    message("event:callEnd", {"timestamp": timestamps}),
    message("ack", {"ackId": texts}),
    message("error", {"description": texts}),
)


tool_calls = st.lists(
    st.fixed_dictionaries(
        {"id": texts},
        optional={
            "tool": st.fixed_dictionaries({"id": texts, "name": texts}) | json_values,
            "request_body": json_values,
            "response_body": json_values,
            "response_status_code": st.none() | numbers,
            "timed_out": st.none() | st.booleans(),
            "endpoint_headers": st.dictionaries(texts, texts, max_size=2),
        },
    )
    | json_values,
    max_size=2,
)


def items(ids):
    optional_text = st.none() | texts
    return st.fixed_dictionaries(
        {},
        optional={
            "id": ids,
            "item_idx": st.integers(0, 10**6),
            "role": texts,
            "text": optional_text,
            "live_transcript": optional_text,
            "post_call_transcript": optional_text,
            "redacted_transcript": optional_text,
            "started_at": lenient(odd_timestamps),
            "duration_ms": lenient(numbers),
            "voice": json_values,
            "tool_calls": tool_calls,
            "tool_call_ids": st.lists(texts, max_size=2),
        },
    )


def conversations(ids=texts):
    return st.fixed_dictionaries(
        {"id": texts},
        optional={
            "items": st.lists(items(ids), max_size=4),
            "agent": lenient(st.dictionaries(texts, json_values, max_size=2)),
            "origin": lenient(st.sampled_from(["inbound", "outbound", "telephony-outbound", "web"])),
            "ended_by": lenient(texts),
            "text": lenient(texts),
            "is_live": lenient(st.booleans()),
            "started_at": lenient(odd_timestamps),
            "ended_at": lenient(odd_timestamps),
            "duration_ms": lenient(numbers),
            "from_phone_number": lenient(texts),
            "summary": json_values,
            "call_info": lenient(st.dictionaries(texts, json_values, max_size=2)),
        },
    )


def phonic_messages(ids=texts):
    return st.one_of(
        message("conversation-updated", {"conversation": conversations(ids)}),
        message("conversation-ended", {}),
        message("error", {"error": st.fixed_dictionaries({"message": texts})}),
        message("error", {"message": texts}),
    )


VALID = {"hiya": hiya_messages, "phonic": phonic_messages()}

# --- mutations --------------------------------------------------------------------------


def _places(value, path=()):
    """Every (path, value) in a parsed message, the message itself included."""
    yield path, value
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, child in children:
        yield from _places(child, path + (key,))


def _at(value, path):
    for key in path:
        value = value[key]
    return value


@st.composite
def mutated(draw, valid):
    """A valid message with one to three defects, sometimes cut or corrupted as text too."""
    message = copy.deepcopy(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([path for path, _ in _places(message)]))
        parent, target = (_at(message, path[:-1]), path[-1]) if path else (None, None)
        how = draw(st.sampled_from(["drop", "replace", "add", "retype"]))
        if how == "retype":
            message["type"] = draw(st.sampled_from(sorted(WIRE_TYPES.values())) | texts | json_values)
        elif how == "add" and isinstance(_at(message, path), dict):
            key = draw(st.sampled_from(["msg", "id", "items", "item_idx", "type"]) | texts)
            _at(message, path)[key] = draw(json_values)
        elif how == "drop" and parent is not None:
            del parent[target]
        elif parent is not None:
            parent[target] = draw(json_values)
    text = json.dumps(message, ensure_ascii=draw(st.booleans()))
    damage = draw(st.sampled_from(["none", "none", "cut", "byte"]))
    data = text.encode()
    if damage == "cut":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "byte":
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


def _decodes_to_an_event(provider, data, decoder=None):
    """The event for ``data``: one of the provider's, and its record is JSON that round-trips."""
    event = (decoder or PROVIDERS[provider].new_decoder()).decode(data, RECEIVED)
    assert isinstance(event, Event) and event.received_at is RECEIVED
    assert type(event) in {DecodeError, UnknownMessage, *CLASSES[provider].values()}
    record = json.loads(to_json(CALLS[provider], event))
    assert record["event"] == event.kind
    if type(event) not in (DecodeError, UnknownMessage):
        payload = _provider_payload(record)
        assert payload == _normalised(json.loads(data)), "the record keeps what the server sent"
        assert PROVIDERS[provider].new_decoder().decode(json.dumps(payload), RECEIVED) == event
    return event


# --- properties -------------------------------------------------------------------------


def test_mutated_messages_of_every_type_decode_to_an_event(record_property):
    cases = []

    @FUZZ
    @given(st.sampled_from(sorted(CLASSES)).flatmap(lambda p: st.tuples(st.just(p), mutated(VALID[p]))))
    def check(case):
        cases.append(case)
        provider, data = case
        _decodes_to_an_event(provider, data)

    check()
    record_property("fuzz_cases", len(cases))
    assert {provider for provider, _ in cases} == set(CLASSES)


def test_valid_messages_of_every_type_round_trip_through_their_record(record_property):
    kinds = []

    @FUZZ
    @given(st.sampled_from(sorted(CLASSES)).flatmap(lambda p: st.tuples(st.just(p), VALID[p])))
    def check(case):
        provider, wire = case
        event = _decodes_to_an_event(provider, json.dumps(wire))
        assert type(event) is CLASSES[provider][wire["type"]], getattr(event, "reason", event)
        kinds.append(event.kind)

    check()
    record_property("fuzz_cases", len(kinds))
    assert set(kinds) == {cls.kind for classes in CLASSES.values() for cls in classes.values()}


def test_a_phonic_decoder_decodes_a_stream_as_fresh_decoders_would(record_property):
    frames = []
    # Few ids, so items recur from one snapshot to the next, valid or not: the decoder's cache at work.
    messages = phonic_messages(ids=st.sampled_from("abc"))
    stream = st.lists(messages.map(json.dumps).map(str.encode) | mutated(messages), min_size=2, max_size=6)

    @FUZZ
    @given(stream)
    def check(datas):
        frames.extend(datas)
        decoder = PHONIC.new_decoder()
        for data in datas:
            assert _decodes_to_an_event("phonic", data, decoder) == PHONIC.new_decoder().decode(
                data, RECEIVED
            )

    check()
    record_property("fuzz_cases", len(frames))


def _provider_payload(record):
    """The server's message as a record holds it (the spec's names, not the codec's tables)."""
    kind = record["event"]
    renames = WIRE_KEYS.get(kind, {})
    own = RECORD_ONLY | DERIVED.get(kind, set())
    wire = {renames.get(key, key): value for key, value in record.items() if key not in own}
    return {"type": WIRE_TYPES[kind], **wire, **record["extra"]}


def _normalised(message):
    """The server's message after the documented normalisations: lone surrogates replaced
    with U+FFFD, the timestamps livecall reads in UTC (Phonic's that it cannot read kept as
    sent), Hiya's optional offset null."""
    message = _without_lone_surrogates(message)
    kind = message["type"]
    if kind in ("event:start", "event:callEnd"):
        message["timestamp"] = _utc(message["timestamp"])
    elif kind == "transcript":
        message.setdefault("offset", None)
    elif kind == "conversation-updated":
        conversation = message["conversation"]
        for model in [conversation, *conversation.get("items", ())]:
            for name in ("started_at", "ended_at") if model is conversation else ("started_at",):
                if model.get(name).__class__ is str:
                    model[name] = _utc(model[name], lenient=True)
    return message


def _without_lone_surrogates(value):
    """A copy of a JSON value with every lone surrogate, in keys too, replaced as the decoder does."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    return value


def _utc(timestamp, lenient=False):
    try:
        return format_timestamp(parse_timestamp(timestamp, None))
    except Invalid:
        if lenient:
            return timestamp
        raise
