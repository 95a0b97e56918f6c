"""Signing: Standard Webhooks signatures, as the receiver the README documents checks them."""

import base64
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

import pytest
import requests
import standardwebhooks

import livecall
from livecall.testing import wait_until
from livecall_webhook import Sender, SigningKey

from .conftest import SECRET


@pytest.fixture
def readme_receiver(tmp_path, closed_port):
    """The receiver the README documents, run as written."""
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    [code] = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "class Hook" in block]
    (tmp_path / "receiver.py").write_text(code)
    env = dict(os.environ, PORT=str(closed_port), LIVECALL_WEBHOOK_SECRET=SECRET)
    process = subprocess.Popen(
        [sys.executable, str(tmp_path / "receiver.py")], env=env, stdout=subprocess.PIPE, text=True
    )

    def listening():
        try:
            socket.create_connection(("127.0.0.1", closed_port), timeout=1).close()
        except OSError:
            return process.poll() is not None  # a receiver that died ends the wait too
        return True

    wait_until(listening)  # a port opening notifies nobody: polled
    assert process.poll() is None, "the receiver exited before listening"
    yield f"http://127.0.0.1:{closed_port}/", process
    process.terminate()
    process.wait(10)
    process.stdout.close()


def test_the_readme_receiver_accepts_signed_bodies_only(readme_receiver):
    url, process = readme_receiver
    body = livecall.to_json(
        livecall.Call(provider="hiya", id="call_7"), livecall.Transcript("hi", "user")
    ).encode()
    signed, forged = Sender(url, SECRET), Sender(url, "not-the-secret")
    assert signed.send(body) is None
    failure = forged.send(body)
    assert failure is not None and failure.permanent and "HTTP 401" in failure.reason
    signed.close()
    forged.close()
    assert process.stdout.readline() == "call_7 transcript hi\n"


def test_the_readme_receiver_refuses_a_captured_request_played_again_later(readme_receiver):
    url, process = readme_receiver
    body = b'{"event": "transcript", "call_id": "call_8", "text": "hi"}'
    headers = {"webhook-id": "msg_captured", "Content-Type": "application/json"}
    for age in (0, 6 * 60):
        timestamp = int(time.time()) - age
        headers.update({"webhook-timestamp": str(timestamp)})
        headers["webhook-signature"] = SigningKey(SECRET).sign("msg_captured", timestamp, body)
        answer = requests.post(url, data=body, headers=headers, timeout=10)
        assert answer.status_code == (204 if age == 0 else 401), f"signed {age} s ago"


def test_a_whsec_secret_is_base64_and_a_plain_one_its_own_bytes(receiver):
    key = os.urandom(24)
    whsec = "whsec_" + base64.b64encode(key).decode()
    for secret, receivers_key in ((whsec, whsec), (SECRET, SECRET.encode())):
        sender = Sender(receiver.url, secret)
        assert sender.send(b'{"n": 1}') is None
        sender.close()
        request = receiver.requests[-1]
        standardwebhooks.Webhook(receivers_key).verify(request.body, request.headers)
        assert request.headers["webhook-id"].startswith("msg_")
    with pytest.raises(livecall.ConfigurationError, match="not base64"):
        Sender(receiver.url, "whsec_not base64!")
