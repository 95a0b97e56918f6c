"""The table of one watch's states and moves, on its own: no hub, no socket, no thread."""

import itertools

import pytest

from livecall import EndReason
from livecall._watch.lifecycle import MOVES, Lifecycle, LifecycleError, State, Step

ILLEGAL = [move for move in itertools.product(State, Step) if move not in MOVES]


def in_state(state: State) -> Lifecycle:
    """A watch put straight in ``state``, as if it had got there."""
    life = Lifecycle()
    life.state = state
    return life


def run(*steps: Step) -> Lifecycle:
    life = Lifecycle()
    for step in steps:
        life.move(step)
    return life


@pytest.mark.parametrize("state, step", [move for move in MOVES if move[1] is not Step.STOP])
def test_every_allowed_move_goes_where_the_table_says(state, step):
    life = in_state(state)
    assert life.move(step) is MOVES[state, step] is life.state


@pytest.mark.parametrize("state", State)
def test_a_stop_is_allowed_in_every_state_and_goes_where_the_table_says(state):
    life = in_state(state)
    assert life.stop(EndReason.CLOSED) is MOVES[state, Step.STOP] is life.state
    assert life.stop_reason is EndReason.CLOSED


@pytest.mark.parametrize("state, step", ILLEGAL)
def test_every_other_move_raises_names_the_state_and_step_and_moves_nothing(state, step):
    life = in_state(state)
    with pytest.raises(LifecycleError, match=rf"state {state.name} cannot take step {step.name}"):
        life.move(step)
    assert life.state is state


def test_illegal_moves_include_the_bugs_that_matter():
    for move in [
        (State.STARTING, Step.START),  # start() twice
        (State.FINISHING, Step.FINISH),  # the end sent to the dispatcher twice
        (State.FINISHED, Step.DONE),  # the last hooks run twice
        (State.STOPPING, Step.OPENED),  # a connection kept after close()
        (State.STOPPING, Step.RETRY),  # a reconnect after close()
        (State.BACKING_OFF, Step.FINISH),  # the end decided without the backoff's attempt
        (State.NEW, Step.CONNECT),  # connecting before start()
    ]:
        assert move in ILLEGAL


def reachable_from(state: State) -> set[State]:
    reached = {state}
    while True:
        grown = reached | {after for (before, _), after in MOVES.items() if before in reached}
        if grown == reached:
            return reached
        reached = grown


def test_every_state_is_reachable_and_every_one_can_still_finish():
    assert reachable_from(State.NEW) == set(State)
    for state in State:
        assert State.FINISHED in reachable_from(state), state


def test_a_watch_goes_round_its_reconnects_and_ends():
    life = run(Step.START, Step.CONNECT, Step.OPENED, Step.RETRY, Step.CONNECT, Step.OPENED, Step.FINISH)
    assert life.state is State.FINISHING
    life.move(Step.DONE)
    assert life.state is State.FINISHED


def test_start_moves_a_new_watch_once():
    life = Lifecycle()
    life.start()
    assert life.state is State.STARTING
    with pytest.raises(LifecycleError, match="STARTING cannot take step START"):
        life.start()


def test_a_close_before_start_is_kept_and_takes_effect_at_start():
    life = Lifecycle()
    assert life.stop(EndReason.CLOSED) is State.NEW
    assert life.stop_reason is EndReason.CLOSED
    life.start()
    assert life.state is State.STOPPING
    assert life.proceed(Step.CONNECT) is EndReason.CLOSED
    assert life.move(Step.FINISH) is State.FINISHING


@pytest.mark.parametrize(
    "state", [State.STARTING, State.CONNECTING, State.OPEN, State.BACKING_OFF, State.STOPPING]
)
def test_a_stop_leaves_a_connection_or_backoff_to_stop_only_before_the_end_is_decided(state):
    assert in_state(state).stop(EndReason.CLOSED) is State.STOPPING


@pytest.mark.parametrize("state", [State.FINISHING, State.FINISHED])
def test_a_stop_once_the_end_is_decided_changes_no_state_but_is_remembered(state):
    life = in_state(state)
    assert life.stop(EndReason.ENDED) is state
    assert life.stop_reason is EndReason.ENDED


@pytest.mark.parametrize(
    "first, then", list(itertools.product([EndReason.ENDED, EndReason.CLOSED], repeat=2))
)
def test_the_calls_end_outranks_a_close_whichever_came_first(first, then):
    life = run(Step.START, Step.CONNECT, Step.OPENED)
    life.stop(first)
    life.stop(then)
    expected = EndReason.ENDED if EndReason.ENDED in (first, then) else EndReason.CLOSED
    assert life.stop_reason is expected and life.state is State.STOPPING


def test_proceed_moves_while_not_stopping_and_gives_the_reason_once_stopping():
    life = run(Step.START)
    assert life.proceed(Step.CONNECT) is None and life.state is State.CONNECTING
    assert life.proceed(Step.OPENED) is None and life.state is State.OPEN
    life.stop(EndReason.CLOSED)
    assert life.proceed(Step.RETRY) is EndReason.CLOSED
    assert life.state is State.STOPPING, "a stopping watch does not back off"


def test_proceed_still_refuses_an_illegal_move():
    with pytest.raises(LifecycleError):
        run(Step.START).proceed(Step.OPENED)


def test_connected_once_is_set_by_the_first_opening_and_stays():
    life = run(Step.START, Step.CONNECT)
    assert not life.connected_once
    life.move(Step.RETRY)
    life.move(Step.CONNECT)
    assert not life.connected_once, "a failed attempt is no connection"
    life.move(Step.OPENED)
    assert life.connected_once
    for step in (Step.RETRY, Step.CONNECT, Step.FINISH, Step.DONE):
        life.move(step)
        assert life.connected_once


def test_a_new_watch_knows_nothing_yet():
    life = Lifecycle()
    assert life.state is State.NEW and life.stop_reason is None
    assert not life.connected_once and not life.call_started
