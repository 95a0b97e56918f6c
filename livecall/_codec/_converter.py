"""The one cattrs converter: wire dicts to events, events to JSON-lines records.

Every hook is registered here, once.  Hooks that cattrs generates (compiles)
are registered as factories, and each provider's tagged union (keyed on
``type``) is configured when its first decoder is made: importing this module
compiles nothing, which keeps the CLI's start-up fast.

Wire and record names differ (``msg`` on the wire is ``text`` in the event and
the record), so renames apply to structuring only.  ``received_at`` is never
read from the wire: the decoder writes the frame's arrival time into the
parsed dict under :data:`RECEIVED_AT` (and keeps what the server sent there
in the event's ``extra``).

Nothing the server sent is dropped: keys no field holds go to ``extra`` at
every level, and Phonic's models remember which typed fields were sent, so a
record writes back the server's nulls and empty lists.
"""

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Callable, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, ClassValidationError
from cattrs.gen import (
    make_dict_structure_fn,
    make_dict_unstructure_fn,
    make_iterable_unstructure_fn,
    override,
)
from cattrs.strategies import configure_tagged_union

from ..events import (
    Ack,
    CallEnded,
    CallStarted,
    Conversation,
    ConversationEnded,
    ConversationItem,
    ConversationUpdated,
    DecodeError,
    Event,
    ScreeningEnded,
    ServerError,
    ToolCall,
    Transcript,
)
from ._server_words import server_words
from ._values import (
    Invalid,
    as_is,
    exactly,
    format_timestamp,
    frame_to_json,
    json_type,
    parse_timestamp,
    shallow,
    structure_role,
)

__all__ = [
    "CONVERTER",
    "NEEDED_FIELDS",
    "RECEIVED_AT",
    "WIRE_NAMES",
    "HiyaMessage",
    "PhonicMessage",
    "structure_hook",
    "union_hook",
    "wire_types",
]

HiyaMessage = Union[CallStarted, Transcript, ScreeningEnded, CallEnded, Ack, ServerError]
PhonicMessage = Union[ConversationUpdated, ConversationEnded, ServerError]

#: The key under which the decoder hands the hooks each frame's arrival time.
RECEIVED_AT = "received_at"

_WIRE_TYPES = {
    CallStarted: "event:start",
    Transcript: "transcript",
    ScreeningEnded: "event:end",
    CallEnded: "event:callEnd",
    Ack: "ack",
    ServerError: "error",
    ConversationUpdated: "conversation-updated",
    ConversationEnded: "conversation-ended",
}
_FROM_WIRE = {
    Transcript: {
        "text": override(rename="msg"),
        "role": override(struct_hook=structure_role),
        # derived for Phonic, never sent by Hiya
        **{name: override(omit=True) for name in ("item_idx", "item_id", "revised", "redacted")},
    },
    ScreeningEnded: {"message": override(rename="msg")},
    Ack: {"ack_id": override(rename="ackId")},
}
#: Per event class, the wire name of each attribute named differently on the wire.
WIRE_NAMES = {
    cls: {name: spec.rename for name, spec in overrides.items() if spec.rename}
    for cls, overrides in _FROM_WIRE.items()
}
_TO_RECORD = {
    Transcript: {"role": override(unstruct_hook=str)},  # Role.USER -> "user"
    DecodeError: {"raw": override(unstruct_hook=frame_to_json)},
    # Values as sent: JSON already, of any type.
    ToolCall: {
        name: override(unstruct_hook=as_is)
        for name in ("name", "arguments", "result", "status_code", "error", "timed_out")
    },
}
#: The typed fields of Phonic's models that livecall needs for its own work: a
#: wrongly typed one is a DecodeError.  The others are read leniently: a value
#: of another type is kept as sent in ``extra``, never the loss of a snapshot.
NEEDED_FIELDS = {
    Conversation: frozenset({"id", "items"}),
    ConversationItem: frozenset(
        {"id", "item_idx", "role", "text", "live_transcript", "post_call_transcript", "redacted_transcript"}
    ),
}
#: Model attributes that are not wire fields.
_BOOKKEEPING = frozenset({"extra", "wire_fields"})
_ITEMS = tuple[ConversationItem, ...]
#: Keys of a message that are never an event's ``extra``: the union's tag, and
#: the arrival time the decoder wrote (the server's own is put back by the decoder).
_NOT_EXTRA = frozenset({"type", RECEIVED_AT})

CONVERTER = cattrs.Converter()
_UNION_HOOKS: dict[Any, Callable[[Any, Any], Any]] = {}
_UNIONS_LOCK = threading.Lock()


def wire_types(union: Any) -> dict[str, type]:
    """The wire ``type`` of each member of a message union."""
    return {_WIRE_TYPES[cls]: cls for cls in union.__args__}


def union_hook(union: Any) -> Callable[[Any, Any], Any]:
    """The structure hook of a provider's message union, configured on first use.

    Locked: watches may start in several threads at once, and a hook fetched
    while another thread configures the same union could be half-built.
    """
    with _UNIONS_LOCK:
        if union not in _UNION_HOOKS:
            configure_tagged_union(union, CONVERTER, tag_generator=_WIRE_TYPES.__getitem__, tag_name="type")
            _UNION_HOOKS[union] = structure_hook(union)
        return _UNION_HOOKS[union]


def structure_hook(type_: Any) -> Callable[[Any, Any], Any]:
    """The converter's structure hook for ``type_`` (``get_structure_hook`` is cattrs >= 24.1)."""
    getter = getattr(CONVERTER, "get_structure_hook", None)
    if getter is not None:
        return getter(type_)
    # cattrs < 24.1.  cattrs annotates this private attribute as taking the converter
    # too (mypy's call-arg, and misc for its note on the annotation); it takes the type only.
    return CONVERTER._structure_func.dispatch(type_)  # type: ignore[call-arg, misc]


def _structure_server_error(message: dict[str, Any], _: Any) -> ServerError:
    """Providers put an error's text in different places: take the first string found.

    ``extra`` keeps the whole message but its ``type``: the text is derived,
    from one of several places.
    """
    text = server_words(message)
    if text is not None:
        extra = shallow({key: value for key, value in message.items() if key not in _NOT_EXTRA})
        return ServerError(message=text, received_at=message[RECEIVED_AT], extra=extra)
    raise Invalid("expected the error's text in description, message, error.message or error")


def _model_structure(cls: type) -> Callable[[Any, Any], Any]:
    """A Phonic model from the wire: typed fields, every other key into ``extra``.

    A field livecall needs (:data:`NEEDED_FIELDS`) must be well formed, and
    its errors carry the field's path like cattrs' own.  Any other typed field
    whose value cannot be read goes into ``extra`` as sent, its attribute left
    None.  ``wire_fields`` records the typed fields read, nulls included.
    """
    needed = NEEDED_FIELDS[cls]
    fields = [
        (field.name, field.type, structure_hook(field.type), field.default is attrs.NOTHING)
        for field in attrs.fields(attrs.resolve_types(cls))
        if field.name not in _BOOKKEEPING
    ]

    def structure(value: Any, _: Any) -> Any:
        if value.__class__ is cls:  # already decoded: the Phonic decoder's cached items
            return value
        if value.__class__ is not dict:
            raise Invalid(f"expected object, got {json_type(value)}")
        extra = dict(value)
        typed: dict[str, Any] = {}
        errors: list[Exception] = []
        for name, type_, hook, required in fields:
            if name not in value:
                if required:
                    errors.append(_at_attribute(KeyError(name), cls, name, type_))
                continue
            try:
                typed[name] = hook(value[name], type_)
            except Exception as error:
                if name in needed:
                    errors.append(_at_attribute(error, cls, name, type_))
                continue
            del extra[name]
        if errors:
            raise ClassValidationError(f"While structuring {cls.__name__}", errors, cls)
        return cls(**typed, extra=shallow(extra), wire_fields=frozenset(typed))

    return structure


def _at_attribute(error: Exception, cls: type, name: str, type_: Any) -> Exception:
    """Note the attribute on ``error`` as cattrs does, so the reason names its path."""
    note = AttributeValidationNote(f"Structuring class {cls.__qualname__} @ attribute {name}", name, type_)
    error.__notes__ = [*getattr(error, "__notes__", []), note]  # type: ignore[attr-defined]
    return error


def _event_structure(cls: type) -> Callable[[Any, Any], Any]:
    """An event from the wire message; the keys no field reads go into ``extra``."""
    overrides: dict[str, Any] = _FROM_WIRE.get(cls, {})
    generated: Callable[[Any, Any], Any] = make_dict_structure_fn(
        cls,
        CONVERTER,
        received_at=override(struct_hook=as_is),
        extra=override(struct_hook=shallow),
        **overrides,
    )
    read = _NOT_EXTRA | {
        overrides[field.name].rename or field.name if field.name in overrides else field.name
        for field in attrs.fields(cls)
        if field.name != "extra" and not (field.name in overrides and overrides[field.name].omit)
    }

    def structure(value: Any, _: Any) -> Any:
        # Most messages carry only the keys the event reads: a C-speed subset test spares the loop.
        value["extra"] = {} if value.keys() <= read else {k: v for k, v in value.items() if k not in read}
        return generated(value, cls)

    return structure


def _wire_shape_unstructure(cls: type) -> Callable[[Any], dict[str, Any]]:
    """Back to the wire's shape: the typed fields the server sent, ``extra`` merged back in.

    For a model made in code (no ``wire_fields``), the typed fields that are set.
    """
    generated: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
        cls, CONVERTER, extra=override(omit=True), wire_fields=override(omit=True)
    )
    set_only: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(
        cls,
        CONVERTER,
        _cattrs_omit_if_default=True,
        extra=override(omit=True),
        wire_fields=override(omit=True),
    )

    def unstructure(value: Any) -> dict[str, Any]:
        sent = value.wire_fields
        if sent is None:
            return {**value.extra, **set_only(value)}
        typed = generated(value)
        return {**value.extra, **{name: typed[name] for name in sent}}

    return unstructure


def _optional(type_: Any) -> Callable[[Any, Any], Any]:
    """``Optional[X]`` with X's hook found once (cattrs' own looks it up on every call)."""
    (inner_type,) = (arg for arg in get_args(type_) if arg is not type(None))
    inner = structure_hook(inner_type)

    def structure(value: Any, _: Any) -> Any:
        return None if value is None else inner(value, inner_type)

    return structure


def _strict_items() -> Callable[[Any, Any], Any]:
    """cattrs' tuple hook (it reports the failing index), for JSON arrays only."""
    structure_tuple = structure_hook(_ITEMS)

    def structure(value: Any, type_: Any) -> Any:
        if value.__class__ is not list:
            raise Invalid(f"expected array, got {json_type(value)}")
        return structure_tuple(value, type_)

    return structure


def _is_event(type_: Any) -> bool:
    return isinstance(type_, type) and issubclass(type_, Event)


def _is_optional(type_: Any) -> bool:
    args = get_args(type_)
    return get_origin(type_) is Union and len(args) == 2 and type(None) in args


def _is_phonic_model(type_: Any) -> bool:
    return type_ in (Conversation, ConversationItem)


def _is_items(type_: Any) -> bool:
    return type_ == _ITEMS


def _is_json_object(type_: Any) -> bool:
    return type_ in (dict[str, Any], Mapping[str, Any])


def _register_values() -> None:
    for cls, expected, accepted in (
        (str, "string", (str,)),
        (int, "integer", (int,)),
        (float, "number", (int, float)),  # an int stays an int: records keep the server's 1800
        (bool, "boolean", (bool,)),
    ):
        CONVERTER.register_structure_hook(cls, exactly(expected, *accepted))
    CONVERTER.register_structure_hook(datetime, parse_timestamp)
    CONVERTER.register_structure_hook_factory(_is_optional, _optional)
    CONVERTER.register_unstructure_hook(datetime, format_timestamp)
    # JSON objects the model keeps as they are (agent, call_info, raw): no copy, only their depth checked.
    an_object = exactly("object", dict)
    CONVERTER.register_structure_hook_func(_is_json_object, lambda value, _: shallow(an_object(value, _)))
    CONVERTER.register_unstructure_hook_func(_is_json_object, as_is)


def _register_phonic_model() -> None:
    CONVERTER.register_structure_hook_factory(_is_phonic_model, _model_structure)
    CONVERTER.register_unstructure_hook_factory(_is_phonic_model, _wire_shape_unstructure)
    CONVERTER.register_structure_hook_func(_is_items, _strict_items())
    CONVERTER.register_unstructure_hook_factory(
        _is_items, lambda items: make_iterable_unstructure_fn(items, CONVERTER, unstructure_to=list)
    )


def _register_events() -> None:
    CONVERTER.register_structure_hook_factory(_is_event, _event_structure)
    CONVERTER.register_unstructure_hook_factory(
        _is_event,
        lambda cls: make_dict_unstructure_fn(
            cls,
            CONVERTER,
            **_TO_RECORD.get(cls, {}),  # type: ignore[arg-type]
        ),
    )
    CONVERTER.register_structure_hook(ServerError, _structure_server_error)


_register_values()
_register_phonic_model()
_register_events()
