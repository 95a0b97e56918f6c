"""Dead letters: what was not delivered is kept, sealed, in a file only its owner reads, and
``livecall webhook-replay`` sends it later."""

import argparse
import json
import os
import subprocess
import sys
import tracemalloc

import pytest

import livecall
import livecall_webhook
from livecall.plugins import DISABLE_AUTOLOAD_ENV, create_plugin_manager
from livecall.testing import Simulator, configure, wait_until
from livecall_webhook import Sender, WebhookForwarder, replay

from .conftest import SECRET, dead_bodies, livecall_command, parsed, sealed, verified, watch, watch_phonic


def test_a_refused_event_is_reported_kept_and_replayed(tmp_path, receiver_at, capsys):
    dead = tmp_path / "dead.jsonl"
    refused = []

    def answer(body):
        if json.loads(body)["event"] == "transcript" and not refused:
            refused.append(body)
        return 400 if body in refused else 200

    receiver = receiver_at(answer=answer)
    config = configure(
        livecall_webhook,
        "--webhook-url",
        receiver.url,
        "--webhook-secret",
        SECRET,
        "--webhook-dead-letter",
        str(dead),
    )
    with Simulator("phonic") as sim:
        call, bodies = watch(sim, plugin_manager=config.plugin_manager)
    config.close()

    assert [r.body for r in receiver.requests].count(refused[0]) == 1, "a 400 is not retried"
    assert receiver.accepted() == [b for b in bodies if b != refused[0]]
    assert dead_bodies(dead) == parsed(refused)
    [(status, message)] = config.failures
    assert status == 5 and "1 events undelivered" in message and str(dead) in message
    assert f"livecall webhook-replay {dead}" in message

    receiver_now_accepts = receiver_at()
    replayed = livecall.Config(
        options=replay_options(
            str(dead), "--webhook-url", receiver_now_accepts.url, "--webhook-secret", SECRET
        ),
        plugin_manager=config.plugin_manager,
    )
    assert replayed.options.func(replayed) == 0
    assert receiver_now_accepts.accepted() == refused
    assert verified(receiver_now_accepts.requests[0])
    assert not dead.exists()
    assert "1 delivered" in capsys.readouterr().out


def test_a_target_that_stays_down_leaves_every_event_in_order(tmp_path, receiver_at):
    dead = tmp_path / "dead.jsonl"
    receiver = receiver_at(down=True)
    config = configure(
        livecall_webhook,
        "--webhook-url",
        receiver.url,
        "--webhook-dead-letter",
        str(dead),
        "--webhook-retries",
        "1",
        "--webhook-drain-timeout",
        "0.5",
    )
    with Simulator("phonic") as sim:
        call, bodies = watch(sim, plugin_manager=config.plugin_manager)
    config.close()
    assert dead_bodies(dead) == parsed(bodies)
    assert config.failures and config.failures[0][0] == 5
    assert f"{len(bodies)} events undelivered" in config.failures[0][1]
    assert dead.stat().st_mode & 0o077 == 0, "only the owner may read transcripts"

    receiver.come_back()
    sender = Sender(receiver.url)
    result = replay(str(dead), sender)
    sender.close()
    assert (result.delivered, result.kept) == (len(bodies), 0)
    assert receiver.accepted() == bodies
    assert not dead.exists()


def test_livecall_exits_5_and_the_replay_command_delivers(tmp_path, receiver_at, phonic_simulator):
    refusing = receiver_at(answer=lambda body: 400)
    done = watch_phonic(phonic_simulator, "--webhook-url", refusing.url, cwd=tmp_path)
    assert done.returncode == 5, done.stderr
    dead = tmp_path / livecall_webhook.DEFAULT_DEAD_LETTER
    sent = done.stdout.splitlines()
    assert dead_bodies(dead) == parsed(sent)
    assert f"livecall: error: webhook: {len(sent)} events undelivered, written to {dead.name}" in done.stderr

    accepting = receiver_at()
    replayed = livecall_command(
        "webhook-replay",
        dead.name,
        "--webhook-url",
        accepting.url,
        cwd=tmp_path,
        LIVECALL_WEBHOOK_SECRET=SECRET,
    )
    assert replayed.returncode == 0, replayed.stderr
    assert accepting.accepted() == [line.encode() for line in sent]
    assert all(verified(r) for r in accepting.requests)
    assert not dead.exists()
    assert f"{len(sent)} delivered" in replayed.stdout

    again = livecall_command("webhook-replay", dead.name, "--webhook-url", accepting.url, cwd=tmp_path)
    assert again.returncode == 2 and "no dead-letter file" in again.stderr


def test_the_dead_letter_file_is_never_written_through_a_planted_symlink(tmp_path, receiver_at):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    dead = tmp_path / "dead.jsonl"
    dead.symlink_to(victim)
    with pytest.raises(livecall.ConfigurationError, match="symbolic link"):
        configure(
            livecall_webhook, "--webhook-url", "http://127.0.0.1:9/", "--webhook-dead-letter", str(dead)
        )

    refusing = receiver_at(answer=lambda body: 400)
    forwarder = WebhookForwarder(Sender(refusing.url), str(dead))  # planted after the check
    call = livecall.Call(provider="hiya", id="call_1")
    forwarder.livecall_event(call=call, event=livecall.Transcript("hello", "other"))
    forwarder.close(timeout=10)
    assert victim.read_text() == "precious\n"
    assert (forwarder.dead_letter.written, forwarder.dead_letter.unwritten) == (0, 1)


def test_the_dead_letter_file_is_created_owner_only_and_an_existing_one_keeps_its_mode(tmp_path, receiver_at):
    refusing = receiver_at(answer=lambda body: 400)
    call = livecall.Call(provider="hiya", id="call_1")
    existing = tmp_path / "existing.jsonl"
    existing.write_bytes(b"")
    existing.chmod(0o640)
    for path in (tmp_path / "new.jsonl", existing):
        forwarder = WebhookForwarder(Sender(refusing.url), str(path))
        forwarder.livecall_event(call=call, event=livecall.Transcript("hello", "other"))
        forwarder.close(timeout=10)
    assert (tmp_path / "new.jsonl").stat().st_mode & 0o777 == 0o600
    assert existing.stat().st_mode & 0o777 == 0o640
    assert len(dead_bodies(existing)) == 1


# --- replay ---------------------------------------------------------------------------


def replay_options(*argv):
    parser = argparse.ArgumentParser()
    livecall_webhook.livecall_register_commands(parser.add_subparsers())
    return parser.parse_args(["webhook-replay", *argv])


def replay_command(dead, url, *, secret=SECRET, cwd):
    return livecall_command(
        "webhook-replay", str(dead), "--webhook-url", url, cwd=cwd, LIVECALL_WEBHOOK_SECRET=secret
    )


def test_replay_keeps_what_still_fails(tmp_path, receiver_at):
    dead = tmp_path / "dead.jsonl"
    lines = [sealed(b'{"n": %d}' % n, f"msg_{n}") for n in (1, 2)]
    lines += [b"not a dead-letter line"]
    lines += [sealed(b'{"n": %d}' % n, f"msg_{n}") for n in (3, 4)]
    dead.write_bytes(b"\n".join(lines) + b"\n")
    dead.chmod(0o600)
    answers = {b'{"n": 2}': 422, b'{"n": 3}': 503}
    receiver = receiver_at(answer=lambda body: answers.get(body, 200))
    sender = Sender(receiver.url, SECRET, retries=0)
    result = replay(str(dead), sender)
    sender.close()
    assert (result.delivered, result.kept, result.refused) == (1, 4, 1)
    assert dead.read_bytes().splitlines() == lines[1:], "refused, not a line, unreachable, and untried"
    assert [r.body for r in receiver.requests] == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']


def test_replay_of_a_missing_file_is_a_clear_error(tmp_path):
    options = replay_options(str(tmp_path / "none.jsonl"), "--webhook-url", "http://127.0.0.1:9/")
    with pytest.raises(livecall.ConfigurationError, match="no dead-letter file"):
        options.func(livecall.Config(options=options, plugin_manager=create_plugin_manager(autoload=False)))


def test_replay_sends_only_lines_sealed_with_the_secret(tmp_path, receiver):
    dead = tmp_path / "dead.jsonl"
    genuine = [sealed(b'{"n": %d}' % n, f"msg_{n}") for n in range(3)]
    forged = [
        sealed(b'{"n": "forged"}', "msg_forged", secret="a guess at the secret"),
        b'{"event": "transcript", "text": "appended by hand"}',
        genuine[0].replace(b'"n": 0', b'"n": 9'),  # a genuine line, altered
    ]
    dead.write_bytes(b"\n".join([genuine[0], *forged, *genuine[1:]]) + b"\n")
    dead.chmod(0o640)
    done = replay_command(dead, receiver.url, cwd=tmp_path)
    assert done.returncode == livecall.ExitStatus.INCOMPLETE, done.stderr
    assert "3 delivered" in done.stdout and "3 refused" in done.stdout
    assert [json.loads(b) for b in receiver.accepted()] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [r.headers["webhook-id"] for r in receiver.requests] == ["msg_0", "msg_1", "msg_2"]
    assert all(verified(r) for r in receiver.requests)
    assert dead.read_bytes().splitlines() == forged, "refused lines are kept, for a person to look at"
    assert dead.stat().st_mode & 0o777 == 0o640, "the file keeps its mode"


@pytest.mark.parametrize("plant", ["symlink", "world-writable"])
def test_replay_refuses_a_file_others_control(tmp_path, receiver, plant):
    real = tmp_path / "real.jsonl"
    real.write_bytes(sealed(b'{"n": 1}') + b"\n")
    real.chmod(0o600)
    dead = tmp_path / "dead.jsonl"
    if plant == "symlink":
        dead.symlink_to(real)
    else:
        real.rename(dead)
        dead.chmod(0o666)
    done = replay_command(dead, receiver.url, cwd=tmp_path)
    assert done.returncode == livecall.ExitStatus.USAGE
    assert done.stderr.count("\n") == 1 and "refuses" in done.stderr, done.stderr
    assert receiver.requests == []


def test_replay_reads_a_large_file_a_line_at_a_time(tmp_path, closed_port):
    dead = tmp_path / "dead.jsonl"
    line = sealed(b'{"text": "%s"}' % (b"w" * 20_000)) + b"\n"
    with open(dead, "wb") as file:
        for _ in range(2000):  # 40 MB
            file.write(line)
    dead.chmod(0o600)
    sender = Sender(f"http://127.0.0.1:{closed_port}/hook", SECRET, retries=0)
    tracemalloc.start()
    try:
        result = replay(str(dead), sender)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        sender.close()
    assert (result.delivered, result.kept) == (0, 2000)
    assert os.path.getsize(dead) == 2000 * len(line), "the file is kept whole"
    assert peak < 8 * 1024 * 1024, f"{peak} bytes held at once for a {os.path.getsize(dead)}-byte file"


def test_replay_of_a_fifo_is_refused_at_once(tmp_path, receiver):
    """Opening a FIFO for reading waits for a writer: the replay must refuse it, not hang."""
    dead = tmp_path / "dead.jsonl"
    os.mkfifo(dead, 0o600)
    done = replay_command(dead, receiver.url, cwd=tmp_path)
    assert done.returncode == livecall.ExitStatus.USAGE, done.stderr
    assert done.stderr.count("\n") == 1 and "not a regular file" in done.stderr, done.stderr
    assert receiver.requests == []


def test_replay_while_a_watch_still_writes_the_file_loses_no_event(tmp_path, receiver_at):
    """The watch appends every event (its target refuses them) while replays take the file
    over and over: each event reaches the new target once, in order, or stays in the file."""
    dead = tmp_path / "dead.jsonl"
    refusing, accepting = receiver_at(answer=lambda body: 400), receiver_at()
    environment = {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD_ENV}
    environment["LIVECALL_WEBHOOK_SECRET"] = SECRET
    printed = tmp_path / "printed.jsonl"
    with Simulator("hiya", "flood", flood_count=400) as sim, open(printed, "w") as stdout:
        arguments = sim.watch_args("--format", "jsonl", "--webhook-url", refusing.url)
        command = [sys.executable, "-m", "livecall", *arguments, "--webhook-dead-letter", str(dead)]
        watch = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=stdout)
        sender = Sender(accepting.url, SECRET, retries=0)
        replays = 0
        try:
            while watch.poll() is None:
                wait_until(lambda: dead.exists() or watch.poll() is not None)  # files notify nobody
                try:
                    replay(str(dead), sender)
                except FileNotFoundError:
                    continue  # taken by the last replay, and the watch has ended since
                replays += 1
            watch.wait(60)
            if dead.exists():
                replay(str(dead), sender)
        finally:
            sender.close()
            watch.kill()
    events = [json.loads(line) for line in printed.read_text().splitlines()]
    assert watch.returncode == livecall.ExitStatus.INCOMPLETE, "the watch wrote every event to the file"
    assert parsed(accepting.accepted()) == events
    assert replays >= 2, "replays ran while the watch wrote"
    assert not dead.exists() and list(tmp_path.glob(".*")) == []
