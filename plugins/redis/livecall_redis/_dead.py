"""Dead letters: the requests no worker could watch, kept on the dead-letter stream with why.

A dead letter holds the request's fields but its secrets (a provider's
``secret_fields``: Hiya's conversation token), and the worker's own
bookkeeping (:data:`BOOKKEEPING`): the request's id, the reason, how many
times it was delivered, the consumer that buried it, and the last error a
watch of it failed with, and when.
"""

from collections.abc import Mapping
from typing import Optional

import livecall

from ._requests import secret_fields

__all__ = ["BOOKKEEPING", "call_id", "dead_letter", "request_fields"]

#: The fields a worker adds to a dead letter; the others are the request's own.
BOOKKEEPING = ("request_id", "reason", "deliveries", "consumer", "last_error", "last_error_at")


def dead_letter(
    fields: Mapping[str, str],
    *,
    request_id: str,
    reason: str,
    deliveries: int,
    consumer: str,
    noted: Mapping[str, str],
) -> dict[str, str]:
    """What the dead letter of a request holds: ``fields`` but secrets, with the worker's bookkeeping.

    ``noted`` is the last error noted on the request's fence (``last_error``,
    ``last_error_at``), if any; ``reason`` is cut and redacted already.
    """
    secret = secret_fields()
    kept = {name: value for name, value in fields.items() if name not in secret and name not in BOOKKEEPING}
    kept.update(request_id=request_id, reason=reason, deliveries=str(deliveries), consumer=consumer)
    kept.update((name, noted[name]) for name in ("last_error", "last_error_at") if name in noted)
    return kept


def request_fields(letter: Mapping[str, str]) -> dict[str, str]:
    """The fields of the request a dead letter kept: the letter's without the worker's bookkeeping."""
    return {name: value for name, value in letter.items() if name not in BOOKKEEPING}


def call_id(letter: Mapping[str, str]) -> Optional[str]:
    """The call's id as the events stream names it (its entries' ``call_id``), if the letter tells.

    The provider's own id where it has one that is not a secret (Phonic's
    conversation id: the one required field that is not secret); else the
    request's id stands in, as for the events.
    """
    try:
        provider = livecall.get_provider(letter.get("provider", ""))
    except livecall.ConfigurationError:
        return None
    if provider.call_ids_shared:
        naming = [field.name for field in provider.fields if field.required and not field.secret]
        if len(naming) == 1:
            return letter.get(naming[0])
        return None
    return letter.get("request_id")
