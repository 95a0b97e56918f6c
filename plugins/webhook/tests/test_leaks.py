"""Secrets: the signing secret, a URL's password or token, and a credential a server echoes stay
out of logs, messages, reprs and the dead-letter file."""

import logging

import livecall
import livecall_webhook
from livecall.testing import Simulator, configure
from livecall_webhook import Sender, SigningKey, WebhookForwarder

from .conftest import SECRET, dead_bodies, verified, watch


def test_secrets_stay_out_of_logs_files_and_messages(tmp_path, receiver_at, closed_port, caplog, monkeypatch):
    monkeypatch.setenv(livecall_webhook.SECRET_ENV, SECRET)
    token = "query-token-SECRET-42"
    refusing = receiver_at(answer=lambda body: 400)
    dead = tmp_path / "dead.jsonl"
    outputs = []
    targets = [
        refusing.url.replace("127.0.0.1", f"user:pw-{token}@127.0.0.1"),
        f"http://127.0.0.1:{closed_port}/hook",
    ]
    for target in targets:
        config = configure(
            livecall_webhook,
            "--webhook-url",
            f"{target}?token={token}",
            "--webhook-dead-letter",
            str(dead),
            "--webhook-retries",
            "0",
        )
        [forwarder] = [p for p in config.plugin_manager.get_plugins() if isinstance(p, WebhookForwarder)]
        outputs += [repr(forwarder), repr(forwarder.sender)]
        with caplog.at_level(logging.DEBUG):
            with Simulator("phonic") as sim:
                watch(sim, plugin_manager=config.plugin_manager)
            config.close()
        outputs += [message for _, message in config.failures]
    outputs += [record.getMessage() for record in caplog.records]
    outputs.append(dead.read_text())
    text = "\n".join(outputs)
    assert "HTTP 400" in text and "Connection refused" in text
    assert refusing.requests and all(verified(r) for r in refusing.requests), (
        "the secret from the environment signs"
    )
    assert refusing.requests[0].path == f"/hook?token={token}"
    for secret in (SECRET, token):
        assert secret not in text


def test_a_secret_the_server_echoes_is_posted_and_dead_lettered_blanked(tmp_path, receiver_at):
    token = "echoed-bearer-TOKEN-5e1f"
    livecall.Credential(token)  # as a client holds its bearer token
    refusing_the_second = receiver_at(answer=lambda body: 400 if b"second" in body else 200)
    dead = tmp_path / "dead.jsonl"
    forwarder = WebhookForwarder(Sender(refusing_the_second.url, SECRET), str(dead))
    call = livecall.Call(provider="hiya", id="call_1")
    for text in (f"first: invalid token {token}", f"second: Bearer {token} refused"):
        forwarder.livecall_event(call=call, event=livecall.Transcript(text, "assistant"))
    forwarder.close(timeout=10)
    posted = b"".join(r.body for r in refusing_the_second.requests)
    assert b"invalid token ***" in posted and token.encode() not in posted
    assert [body["text"] for body in dead_bodies(dead)] == ["second: Bearer *** refused"]
    assert token not in dead.read_text()
    assert all(verified(r) for r in refusing_the_second.requests), "signed as sent, blanked"


def test_the_signing_key_never_shows(tmp_path):
    key = SigningKey(SECRET)
    sender = Sender("http://127.0.0.1:9/", SECRET)
    assert SECRET not in repr(key) + repr(sender) + repr(vars(sender))
    sender.close()
