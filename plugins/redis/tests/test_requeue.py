"""``livecall requeue``: dead letters back on the requests stream, once each, never without what
their request needs."""

import threading

import attrs
import pytest

import livecall
from livecall.cli import run
from livecall_redis import DEFAULT_DEAD, DEFAULT_REQUESTS, WatchRequest, WorkerSettings, enqueue
from livecall_redis._requeue import requeue

from .conftest import allowing
from .test_commands import run_worker_until
from .test_worker import stream_events, wait_until_done


def requeue_command(redis_server, capsys, *args):
    """``livecall requeue``: its exit status, the ids it printed, what it said on stderr."""
    status = run(["requeue", "--redis", redis_server.url, *args])
    out, err = capsys.readouterr()
    return status, out.split(), err


def dead_letter(redis_client, **fields):
    """A dead letter as a worker writes one: the request's fields but secrets, and why."""
    letter = {"request_id": "1-0", "reason": "delivered too many times", "deliveries": "6", "consumer": "h:1"}
    letter.update(last_error="AuthenticationError: refused", last_error_at="1700000000000")
    return redis_client.xadd(DEFAULT_DEAD, {**fields, **letter})


def test_a_requeued_dead_letter_is_watched_to_its_end(
    redis_server, redis_client, livecall_simulator, running_worker, settings, capsys
):
    """Dead-lettered by a worker that does not allow its URL; requeued, a worker that does watches it."""
    sim = livecall_simulator("phonic", conversation_id="conv_again")
    request = WatchRequest("phonic", conversation_id="conv_again", url=sim.url, idle_timeout=30)
    enqueue(redis_client, request)
    # A worker that allows no simulator: the request dies.
    run_worker_until(settings, lambda: redis_client.xlen(DEFAULT_DEAD) == 1)
    [(letter_id, _)] = redis_client.xrange(DEFAULT_DEAD)

    status, printed, err = requeue_command(redis_server, capsys, letter_id)
    assert (status, err) == (0, "")
    [(new_id, fields)] = redis_client.xrange(DEFAULT_REQUESTS)
    assert printed == [new_id]
    assert fields == request.fields()  # the request again, none of the dead letter's bookkeeping
    assert redis_client.xlen(DEFAULT_DEAD) == 0

    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim)))
    wait_until_done(redis_client)
    assert stream_events(redis_client, "conv_again")[-1]["event"] == "conversation_ended"


def test_requeue_twice_requeues_once(redis_server, redis_client, capsys):
    letter_id = dead_letter(redis_client, provider="phonic", conversation_id="conv_1")
    first = requeue_command(redis_server, capsys, letter_id)
    second = requeue_command(redis_server, capsys, letter_id)
    assert first[0] == 0 and len(first[1]) == 1
    assert second == (
        livecall.ExitStatus.FAILURE,
        [],
        f"livecall: error: dead letter {letter_id} not requeued: no such dead letter\n",
    )
    assert redis_client.xlen(DEFAULT_REQUESTS) == 1


def test_requeues_at_once_requeue_each_letter_once(redis_server, redis_client):
    """Four requeues of the same twenty letters at the same time: twenty requests, no more."""
    ids = [dead_letter(redis_client, provider="phonic", conversation_id=f"conv_{n}") for n in range(20)]
    layout = WorkerSettings(redis_url=redis_server.url)
    done: list[str] = []

    def requeue_all() -> None:
        client = redis_server.client()
        try:
            done.extend(o.request_id for o in requeue(client, layout, ids) if o.request_id)
        finally:
            client.close()

    threads = [threading.Thread(target=requeue_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(done) == 20
    requeued = [fields["conversation_id"] for _, fields in redis_client.xrange(DEFAULT_REQUESTS)]
    assert sorted(requeued) == sorted(f"conv_{n}" for n in range(20))
    assert redis_client.xlen(DEFAULT_DEAD) == 0


def test_a_hiya_dead_letter_cannot_be_requeued_and_stays(redis_server, redis_client, capsys):
    """Its conversation token was not kept: the request cannot be made again without it."""
    letter_id = dead_letter(redis_client, provider="hiya", user_id="user-1234")
    status, printed, err = requeue_command(redis_server, capsys, letter_id)
    assert (status, printed) == (livecall.ExitStatus.FAILURE, [])
    assert err == (
        f"livecall: error: dead letter {letter_id} not requeued: a hiya request needs its "
        "conversation_token, which a dead letter does not keep: enqueue the call again\n"
    )
    assert redis_client.xlen(DEFAULT_DEAD) == 1 and redis_client.xlen(DEFAULT_REQUESTS) == 0


def test_requeue_all_requeues_what_it_can_and_says_what_it_cannot(redis_server, redis_client, capsys):
    phonic = [dead_letter(redis_client, provider="phonic", conversation_id=f"conv_{n}") for n in range(3)]
    hiya = dead_letter(redis_client, provider="hiya", user_id="user-1234")
    malformed = dead_letter(redis_client, provider="skype")
    unread = redis_client.xadd(DEFAULT_DEAD, {"request_id": "2-0", "reason": "the request holds 70000 bytes"})
    status, printed, err = requeue_command(redis_server, capsys, "--all")
    assert status == livecall.ExitStatus.FAILURE
    assert printed == [entry_id for entry_id, _ in redis_client.xrange(DEFAULT_REQUESTS)]
    assert [fields["conversation_id"] for _, fields in redis_client.xrange(DEFAULT_REQUESTS)] == [
        "conv_0",
        "conv_1",
        "conv_2",
    ]
    lines = err.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(f"livecall: error: dead letter {hiya} not requeued: a hiya request needs")
    assert lines[1].startswith(f"livecall: error: dead letter {malformed} not requeued: it is no request: ")
    assert "unknown provider 'skype'" in lines[1]
    assert lines[2].startswith(f"livecall: error: dead letter {unread} not requeued: it is no request: ")
    assert [entry_id for entry_id, _ in redis_client.xrange(DEFAULT_DEAD)] == [hiya, malformed, unread]
    assert not set(phonic) & {entry_id for entry_id, _ in redis_client.xrange(DEFAULT_DEAD)}


def test_requeue_all_reads_every_page(redis_server, redis_client, capsys):
    for n in range(250):
        dead_letter(redis_client, provider="phonic", conversation_id=f"conv_{n}")
    status, printed, err = requeue_command(redis_server, capsys, "--all")
    assert (status, len(printed), err) == (0, 250, "")
    assert redis_client.xlen(DEFAULT_DEAD) == 0


def test_unknown_ids_are_said_and_fail(redis_server, redis_client, capsys):
    known = dead_letter(redis_client, provider="phonic", conversation_id="conv_1")
    status, printed, err = requeue_command(redis_server, capsys, "1-1", known, "1700000000000")
    assert status == livecall.ExitStatus.FAILURE and len(printed) == 1
    assert err == (
        "livecall: error: dead letter 1-1 not requeued: no such dead letter\n"
        "livecall: error: dead letter 1700000000000 not requeued: not an entry id (such as 1717171717171-0)\n"
    )


def test_requeue_needs_ids_or_all(redis_server, capsys):
    for args in ([], ["1-1", "--all"]):
        with pytest.raises(SystemExit) as exit:
            run(["requeue", "--redis", redis_server.url, *args])
        assert exit.value.code == livecall.ExitStatus.USAGE
        err = capsys.readouterr().err
        assert "ID" in err and "--all" in err
