"""The opening handshake without I/O: the request as bytes, the server's answer judged from bytes.

No socket, no thread, no clock: each rule is one answer fed to the reader,
whole or cut anywhere.
"""

import base64
import json

import pytest

import livecall
from livecall._wire.handshake import (
    MAX_RESPONSE_HEAD,
    MAX_RESPONSE_HEADERS,
    ConnectFailed,
    Head,
    HeadReader,
    Target,
    UpgradeReader,
    connect_request,
    new_key,
    upgrade_request,
)
from livecall.errors import AuthenticationError, ConfigurationError, ProtocolError

#: The key and accept value of RFC 6455 section 1.3.
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
TOKEN = "query-token-5d2e9a71b3"
BEARER = "bearer-secret-8c4f1e06"
URL = f"wss://live.example.com/v1/stream?token={TOKEN}"
SAFE_URL = "wss://live.example.com/v1/stream"
UPGRADE = ("Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Accept: {ACCEPT}")
#: A text frame the server sent right behind its 101.
FRAME = b"\x81\x05hello"


@pytest.fixture(scope="module", autouse=True)
def known_secrets():
    """The secrets a client would hold as credentials, so that ``redact`` knows them."""
    livecall.Credential(TOKEN)
    livecall.Credential(BEARER)


def answer(status: str, *headers: str, body: bytes = b"") -> bytes:
    return "\r\n".join([f"HTTP/1.1 {status}", *headers, "", ""]).encode("latin-1") + body


def reader() -> UpgradeReader:
    return UpgradeReader(Target.of(URL), KEY, safe_url=SAFE_URL)


def judge(data: bytes) -> bytes:
    """Feed ``data`` whole, then the end of the connection if the reader still waits."""
    upgrade = reader()
    rest = upgrade.receive_data(data)
    return rest if rest is not None else upgrade.receive_data(b"")


def refused(data: bytes, error: type = Exception) -> BaseException:
    with pytest.raises(error) as raised:
        judge(data)
    return raised.value


# --- the request -------------------------------------------------------------------------


def test_the_upgrade_request_carries_the_resource_the_key_and_the_callers_headers():
    request = upgrade_request(Target.of(URL), KEY, [f"Authorization: Bearer {BEARER}", "X-User: 7"])
    assert (
        request
        == (
            f"GET /v1/stream?token={TOKEN} HTTP/1.1\r\n"
            "Host: live.example.com\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {BEARER}\r\n"
            "X-User: 7\r\n"
            "\r\n"
        ).encode()
    )


@pytest.mark.parametrize(
    "url, host, port, host_header, request_line",
    [
        ("ws://example.com", "example.com", 80, "example.com", "GET / HTTP/1.1"),
        ("wss://example.com", "example.com", 443, "example.com", "GET / HTTP/1.1"),
        ("ws://example.com:8080/a/b", "example.com", 8080, "example.com:8080", "GET /a/b HTTP/1.1"),
        ("wss://[::1]:9443/ws?x=1", "::1", 9443, "[::1]:9443", "GET /ws?x=1 HTTP/1.1"),
    ],
)
def test_the_target_of_a_url(url, host, port, host_header, request_line):
    target = Target.of(url)
    assert (target.host, target.port, target.host_header) == (host, port, host_header)
    assert target.secure is url.startswith("wss:")
    lines = upgrade_request(target, KEY, []).decode().split("\r\n")
    assert lines[:2] == [request_line, f"Host: {host_header}"]


def test_a_targets_repr_hides_its_resource():
    assert TOKEN not in repr(Target.of(URL)) and "live.example.com" in repr(Target.of(URL))


@pytest.mark.parametrize("header", ["X-User: 1\r\nX-Injected: yes", "X-User: a\nb", "X-User: \udcff"])
def test_a_header_that_would_forge_another_or_cannot_be_sent_is_refused_unshown(header):
    with pytest.raises(ConfigurationError, match="the X-User header") as raised:
        upgrade_request(Target.of(URL), KEY, [header])
    assert "Injected" not in str(raised.value) and "\n" not in str(raised.value)


def test_each_key_is_16_fresh_random_bytes():
    keys = {new_key() for _ in range(8)}
    assert len(keys) == 8
    assert all(len(base64.b64decode(key, validate=True)) == 16 for key in keys)


def test_a_connect_request_names_the_target_and_the_proxy_credentials():
    request = connect_request("::1", 443, ("user", "pa:ss"))
    basic = base64.b64encode(b"user:pa:ss").decode()
    assert (
        request
        == (
            f"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\nProxy-Authorization: Basic {basic}\r\n\r\n"
        ).encode()
    )
    assert (
        connect_request("example.com", 80, None)
        == b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n"
    )


# --- a good answer -------------------------------------------------------------------------


def test_a_good_101_upgrades_with_nothing_left_over():
    assert reader().receive_data(answer("101 Switching Protocols", *UPGRADE)) == b""


def test_the_frames_that_came_with_the_101_are_handed_back():
    assert reader().receive_data(answer("101 Switching Protocols", *UPGRADE) + FRAME + FRAME) == FRAME + FRAME


def test_a_head_fed_a_byte_at_a_time_is_whole_at_its_last_byte_only():
    data = answer("101 Switching Protocols", *UPGRADE)
    upgrade = reader()
    assert [upgrade.receive_data(data[i : i + 1]) for i in range(len(data) - 1)] == [None] * (len(data) - 1)
    assert upgrade.receive_data(data[-1:]) == b""


def test_wherever_the_answer_is_cut_the_frames_after_the_head_are_kept():
    head = answer("101 Switching Protocols", *UPGRADE)
    data = head + FRAME
    for cut in range(1, len(data)):
        upgrade = reader()
        first = upgrade.receive_data(data[:cut])
        if first is None:
            assert cut < len(head)
            assert upgrade.receive_data(data[cut:]) == FRAME
        else:
            assert cut >= len(head)
            assert first + data[cut:] == FRAME  # the driver hands later bytes to the protocol


@pytest.mark.parametrize(
    "headers",
    [
        ("upgrade: WebSocket", "CONNECTION: keep-alive, upgrade", f"sec-websocket-accept: {ACCEPT}"),
        (
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Connection: keep-alive",  # a repeated header is one list: the upgrade is still asked
            f"Sec-WebSocket-Accept: {ACCEPT}",
        ),
        ("Upgrade:websocket", "Connection:\tUpgrade ", f"Sec-WebSocket-Accept:   {ACCEPT}"),
    ],
)
def test_header_names_and_tokens_are_read_as_http_has_them(headers):
    assert judge(answer("101 Switching Protocols", *headers)) == b""


# --- a bad upgrade -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers, message",
    [
        (UPGRADE[:2], "Sec-WebSocket-Accept does not match the key"),
        ((*UPGRADE[:2], "Sec-WebSocket-Accept: " + ACCEPT.lower()), "Sec-WebSocket-Accept does not match"),
        ((*UPGRADE[:2], "Sec-WebSocket-Accept: " + new_key()), "Sec-WebSocket-Accept does not match"),
        (UPGRADE[1:], "does not upgrade to websocket"),
        (("Upgrade: h2c", *UPGRADE[1:]), "does not upgrade to websocket"),
        ((UPGRADE[0], UPGRADE[2]), "lacks Connection: Upgrade"),
        ((UPGRADE[0], "Connection: keep-alive", UPGRADE[2]), "lacks Connection: Upgrade"),
        ((*UPGRADE, "Sec-WebSocket-Extensions: permessage-deflate"), "Sec-Websocket-Extensions the client"),
        ((*UPGRADE, "Sec-WebSocket-Protocol: chat"), "Sec-Websocket-Protocol the client did not offer"),
    ],
)
def test_a_101_that_does_not_complete_the_upgrade_is_refused(headers, message):
    error = refused(answer("101 Switching Protocols", *headers), ProtocolError)
    assert message in str(error)


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_at_its_head_and_names_only_the_other_host(status):
    location = f"Location: wss://elsewhere.example.net:8443/steal?token={TOKEN}"
    upgrade = reader()
    with pytest.raises(ProtocolError) as raised:  # at once: its announced body is not waited for
        upgrade.receive_data(answer(f"{status} Moved", location, "Content-Length: 50"))
    message = str(raised.value)
    assert raised.value.code == status
    assert (
        f"{SAFE_URL} answered the handshake with a redirect (HTTP {status}) to elsewhere.example.net;"
        in message
    )
    assert "redirects are not followed" in message
    assert "steal" not in message and "8443" not in message and TOKEN not in message
    assert upgrade.refused is None, "a redirect is not a refusal to wait for or log"


@pytest.mark.parametrize(
    "location, where",
    [
        ("Location: /elsewhere", "to live.example.com"),
        ("Location: //other.example/x", "to other.example"),
        ("", "to live.example.com"),  # no Location: the URL itself, as ``urljoin`` has it
        ("Location: data:text/plain,hi", "without a location"),
    ],
)
def test_a_redirect_is_named_as_the_client_would_have_followed_it(location, where):
    headers = (location,) if location else ()
    assert f"(HTTP 302) {where};" in str(refused(answer("302 Found", *headers), ProtocolError))


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize(
    "body, said",
    [
        (json.dumps({"message": "token expired"}).encode(), "token expired"),
        (json.dumps({"error": {"message": "no such key"}}).encode(), "no such key"),
        (b"  plain words\r\n", "plain words"),
    ],
)
def test_401_and_403_are_authentication_errors_with_the_servers_words(status, body, said):
    data = answer(f"{status} Nope", f"Content-Length: {len(body)}", body=body)
    error = refused(data, AuthenticationError)
    assert isinstance(error, AuthenticationError)
    assert (error.status, error.server_message) == (status, said)
    assert str(error) == f"{SAFE_URL} refused the credentials (HTTP {status}): {said}"


def test_a_refusal_without_a_body_says_nothing_more():
    error = refused(answer("401 Unauthorized", "Content-Length: 0"), AuthenticationError)
    assert isinstance(error, AuthenticationError)
    assert error.server_message is None and str(error) == f"{SAFE_URL} refused the credentials (HTTP 401)"


@pytest.mark.parametrize(
    "status, error_type",
    [
        (404, ProtocolError),
        (400, ProtocolError),
        (500, ConnectFailed),
        (503, ConnectFailed),
        (429, ConnectFailed),
    ],
)
def test_other_statuses_are_final_or_worth_another_try(status, error_type):
    error = refused(answer(f"{status} Whatever", "Content-Length: 7", body=b"go away"), error_type)
    assert type(error) is error_type
    assert str(error) == f"{SAFE_URL} refused the WebSocket handshake (HTTP {status}): go away"
    if error_type is ProtocolError:
        assert error.code == status


def test_a_refusal_waits_for_its_announced_body_however_it_trickles():
    body = json.dumps({"message": "service is restarting"}).encode()
    upgrade = reader()
    assert upgrade.receive_data(answer("503 Busy", f"Content-Length: {len(body)}")) is None
    assert upgrade.refused == 503
    for byte in body[:-1]:
        assert upgrade.receive_data(bytes((byte,))) is None
    with pytest.raises(ConnectFailed, match=r"\(HTTP 503\): service is restarting$"):
        upgrade.receive_data(body[-1:] + b"trailing bytes are not waited for")


def test_a_refusal_cut_short_is_judged_on_what_came():
    upgrade = reader()
    assert upgrade.cut_short() is None, "no head yet: the failure itself is the error"
    assert upgrade.receive_data(answer("403 Forbidden", "Content-Length: 100", body=b"not yours")) is None
    error = upgrade.cut_short()
    assert isinstance(error, AuthenticationError) and error.server_message == "not yours"
    with pytest.raises(AuthenticationError, match="not yours"):
        upgrade.receive_data(b"")


def test_only_a_few_kib_of_a_refusals_body_are_waited_for():
    upgrade = reader()
    head = answer("404 Not Found", "Content-Length: 1000000")
    assert upgrade.receive_data(head + b"x" * 4095) is None
    with pytest.raises(ProtocolError) as raised:
        upgrade.receive_data(b"y")
    assert str(raised.value).endswith(": " + "x" * 200)


def test_only_the_first_few_kib_of_a_body_that_came_with_the_head_are_read():
    body = json.dumps({"padding": "p" * 5000, "message": "too late to be read"}).encode()
    with pytest.raises(ProtocolError) as raised:
        reader().receive_data(answer("404 Not Found", f"Content-Length: {len(body)}", body=body))
    assert "too late" not in str(raised.value) and str(raised.value).endswith('{"padding": "' + "p" * 187)


@pytest.mark.parametrize("length", ["Content-Length: many", "Content-Length: -5"])
def test_a_body_length_that_is_no_length_waits_for_nothing(length):
    with pytest.raises(ProtocolError, match=r"\(HTTP 404\): sorry$"):
        reader().receive_data(answer("404 Not Found", length, body=b"sorry"))


# --- heads that are not what HTTP allows ------------------------------------------------------


def _padded_101(size: int) -> bytes:
    """A good 101 whose head (without its blank line) is ``size`` bytes long."""
    head = answer("101 Switching Protocols", *UPGRADE, "X-Pad: ")[:-4]
    return head + b"p" * (size - len(head)) + b"\r\n\r\n"


def test_a_head_of_the_limit_passes_and_a_byte_more_is_refused():
    assert judge(_padded_101(MAX_RESPONSE_HEAD)) == b""
    with pytest.raises(ProtocolError, match=f"response head is over {MAX_RESPONSE_HEAD} bytes"):
        judge(_padded_101(MAX_RESPONSE_HEAD + 1))


def test_an_endless_head_is_refused_before_it_ends():
    upgrade = reader()
    assert upgrade.receive_data(b"HTTP/1.1 101 Switching Protocols\r\n") is None
    with pytest.raises(ProtocolError, match=f"over {MAX_RESPONSE_HEAD} bytes"):
        for _ in range(MAX_RESPONSE_HEAD):
            upgrade.receive_data(b"X-Pad: pppppppp\r\n")


def test_the_limit_on_headers_counts_every_line():
    padding = [f"X-Pad-{i}: p" for i in range(MAX_RESPONSE_HEADERS - len(UPGRADE))]
    assert judge(answer("101 Switching Protocols", *UPGRADE, *padding)) == b""
    with pytest.raises(ProtocolError, match=f"over {MAX_RESPONSE_HEADERS} headers"):
        judge(answer("101 Switching Protocols", *UPGRADE, *padding, "X-One-Too-Many: p"))


@pytest.mark.parametrize(
    "line", ["X-Note: red\x1b[31m", "X-Note: a\x00b", "X-Note: a\rb", "X-Note: a\nb", "X-Note\x7f: b"]
)
def test_a_header_line_with_control_characters_is_refused(line):
    error = refused(answer("101 Switching Protocols", *UPGRADE, line), ProtocolError)
    assert str(error) == "malformed header in the server's response"


def test_a_tab_and_latin_1_text_are_allowed_in_a_header():
    assert judge(answer("101 Switching Protocols", *UPGRADE, "X-Note: caf\xe9\tok")) == b""


@pytest.mark.parametrize(
    "data",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1\r\n\r\n",
        b"HTTP/1.1 abc Nope\r\n\r\n",
        "HTTP/1.1 \xb201 X\r\n\r\n".encode("latin-1"),
    ],
)
def test_an_answer_that_is_not_http_is_refused(data):
    assert str(refused(data, ProtocolError)) == "the server's response is not HTTP"


def test_a_header_line_without_a_colon_is_refused():
    error = refused(answer("101 Switching Protocols", *UPGRADE, "no colon here"), ProtocolError)
    assert str(error) == "malformed header in the server's response"


@pytest.mark.parametrize("sent", [b"", b"HTTP/1.1 101 Switching"])
def test_a_connection_that_ends_before_the_head_is_worth_another_try(sent):
    upgrade = reader()
    if sent:
        assert upgrade.receive_data(sent) is None
    with pytest.raises(ConnectFailed, match="closed the connection during the handshake"):
        upgrade.receive_data(b"")


def test_a_proxys_answer_is_read_with_the_same_head_rules():
    head = HeadReader()
    assert head.receive_data(b"HTTP/1.1 200 Connection established\r\n") is None
    assert head.receive_data(b"Via: proxy\r\n\r\n") == (Head(200, {"via": "proxy"}), b"")
    with pytest.raises(ProtocolError, match="not HTTP"):
        HeadReader().receive_data(b"SOCKS\r\n\r\n")


# --- secrets ---------------------------------------------------------------------------------

BAD_ANSWERS = [
    answer("101 Switching Protocols", *UPGRADE[:2], f"Sec-WebSocket-Accept: {TOKEN}"),
    answer("101 Switching Protocols", f"Upgrade: {BEARER}"),
    answer("302 Found", f"Location: https://evil.example/{TOKEN}?auth={BEARER}"),
    answer("401 Unauthorized", body=f"bad token {TOKEN} for Authorization: Bearer {BEARER}".encode()),
    answer("403 Forbidden", body=json.dumps({"message": f"Bearer {BEARER} is revoked"}).encode()),
    answer("404 Not Found", body=f"no stream at /v1/stream?token={TOKEN}".encode()),
    answer("503 Busy", body=json.dumps({"error": f"try later, {TOKEN}"}).encode()),
    answer("101 Switching Protocols", *UPGRADE, f"X-Echo: {TOKEN}\x00{BEARER}"),
    answer("101 Switching Protocols", *[f"X-{i}: {TOKEN}" for i in range(MAX_RESPONSE_HEADERS)]),
    f"HTTP/1.1 101 {TOKEN}\r\nX: {BEARER}".encode() + b"p" * MAX_RESPONSE_HEAD,
    f"{TOKEN} {BEARER}\r\n\r\n".encode(),
]


@pytest.mark.parametrize("data", BAD_ANSWERS)
def test_no_error_text_shows_the_url_token_or_the_authorization_header(data):
    upgrade = UpgradeReader(Target.of(URL), KEY, safe_url=SAFE_URL)
    assert TOKEN.encode() in upgrade_request(Target.of(URL), KEY, [f"Authorization: Bearer {BEARER}"])
    with pytest.raises(Exception) as raised:
        if upgrade.receive_data(data) is None:
            upgrade.receive_data(b"")
    error = raised.value
    assert isinstance(error, (ProtocolError, AuthenticationError, ConnectFailed))
    shown = f"{error} {error!r} {getattr(error, 'server_message', '')}"
    assert TOKEN not in shown and BEARER not in shown
    assert str(error), "the error still says what went wrong"
