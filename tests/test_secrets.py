"""Secrets are blanked in every form a server could echo them, and never shown by a repr or a traceback."""

import html
import json
import logging
import traceback
from urllib.parse import quote, quote_plus, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

import livecall
from livecall.testing import Simulator

LONG = 'tok+/=&%ü"SECRET-7f3a'


@pytest.fixture(scope="module", autouse=True)
def known():
    livecall.Credential(LONG)


@pytest.mark.parametrize(
    "form",
    [
        LONG,
        quote(LONG, safe=""),
        quote(LONG),
        quote_plus(LONG),
        quote(LONG, safe="").lower().replace("secret", "SECRET"),  # lower-case hex
        quote(quote(LONG, safe=""), safe=""),
        json.dumps(LONG)[1:-1],
        json.dumps(LONG, ensure_ascii=False)[1:-1],
        json.dumps(LONG)[1:-1].replace("/", "\\/"),
        html.escape(LONG),
        urlencode({"conversationToken": LONG}).split("=", 1)[1],
    ],
)
def test_every_usual_encoding_of_a_secret_is_blanked(form):
    assert livecall.redact(f"said: {form}.") == "said: ***."
    assert livecall.redact(f"glued{form}glued") == "glued***glued", "a long secret is blanked anywhere"


def test_a_short_secret_is_blanked_as_a_whole_word_only():
    livecall.Credential("hunter22")
    assert livecall.redact("pw hunter22, again: (hunter22)") == "pw ***, again: (***)"
    assert livecall.redact("hunter22s xhunter22") == "hunter22s xhunter22"


@pytest.mark.parametrize("value", ["wxyz", "qzx", "seven77"])
def test_a_secret_too_short_to_blank_safely_is_not_blanked_and_says_so(caplog, value):
    with caplog.at_level(logging.WARNING, logger="livecall.secrets"):
        livecall.Credential(value)
    assert f"a credential of {len(value)} characters is too short" in caplog.text
    assert value not in caplog.text
    assert livecall.redact(f"the {value} in a sentence") == f"the {value} in a sentence"


def test_ten_thousand_secrets_are_each_blanked_and_only_the_ones_found_are_compiled(monkeypatch):
    """A watch-many holds a conversation token per call: the registry must not grow
    quadratically with them (it once compiled one pattern of all of them at each one added)."""
    known = livecall._safety.secrets._Known()
    monkeypatch.setattr("livecall._safety.secrets._known", known)
    tokens = [f"conv-{number:06d}-ab12cd34" for number in range(10_000)]  # one shared prefix
    for token in tokens:
        livecall.Credential(token)
    line = f"joined {tokens[4321]}, then {quote_plus(tokens[9999])} and {tokens[0]}x"
    assert livecall.redact(line) == "joined ***, then *** and ***x"
    compiled = [
        secret for anchors in known.by_length.values() for group in anchors.values() for secret in group
    ]
    assert len(compiled) == 10_000
    assert sum(secret._pattern is not None for secret in compiled) == 3


def test_a_secret_inside_a_longer_one_leaves_nothing_of_either(monkeypatch):
    monkeypatch.setattr("livecall._safety.secrets._known", livecall._safety.secrets._Known())
    livecall.Credential("inner-secret-2024")
    livecall.Credential("outer-inner-secret-2024-tail")
    assert livecall.redact("a outer-inner-secret-2024-tail b inner-secret-2024 c") == "a *** b *** c"


def test_errors_are_redacted_as_they_are_made():
    error = livecall.AuthenticationError(f"refused: {LONG}", status=401, server_message=f"bad {LONG}")
    assert str(error) == "refused: ***" and error.server_message == "bad ***"
    assert LONG not in repr(livecall.ProtocolError(f"closed: {quote(LONG, safe='')}", code=4001))


def test_requests_show_no_token_in_their_repr():
    hiya = livecall.HiyaClient("bearer-SECRET-0001", "conversation-SECRET-02", "user", plugins=[object()])
    phonic = livecall.PhonicClient("conv", session_token="session-SECRET-0003", plugins=[object()])
    for request in (hiya._session.request(hiya.base_url), phonic._session.request(phonic.base_url)):
        assert "SECRET" in request.url or any("SECRET" in line for line in request.headers)
        assert "SECRET" not in repr(request)


def test_a_traceback_with_locals_shows_no_credential(plugin_manager):
    """``pytest -l`` and error trackers print every frame's locals: the header list among them."""
    with Simulator("hiya") as sim:
        kwargs = dict(sim.client_kwargs(), token="wrong-bearer-SECRET-77aa")
        client = livecall.HiyaClient(**kwargs, plugin_manager=plugin_manager, max_retries=0)
        with pytest.raises(livecall.AuthenticationError) as raised:
            client.run()
    stack = traceback.TracebackException.from_exception(raised.value, capture_locals=True).stack
    frames = [frame for frame in stack if "/livecall/" in frame.filename]
    assert "open_connection" in [frame.name for frame in frames], "the frame that sent the headers"
    for frame in frames:
        for value in (frame.locals or {}).values():
            assert "wrong-bearer-SECRET-77aa" not in value
            assert sim.credentials["conversation_token"] not in value


def test_websocket_clients_trace_is_redacted_whatever_handler_writes_it():
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    trace = logging.getLogger("websocket")
    trace.addHandler(handler)
    previous = trace.level
    trace.setLevel(logging.DEBUG)
    try:
        trace.debug("--- request header ---\nAuthorization: Bearer %s\nGET /?t=%s", LONG, quote_plus(LONG))
    finally:
        trace.removeHandler(handler)
        trace.setLevel(previous)
    assert [record.getMessage() for record in records] == [
        "--- request header ---\nAuthorization: Bearer ***\nGET /?t=***"
    ]


def test_hidden_lines_iterate_but_never_print():
    lines = livecall._safety.secrets.HiddenLines(["Authorization: Bearer abc"])
    assert list(lines) == ["Authorization: Bearer abc"] and len(lines) == 1
    assert "abc" not in repr(lines) and "abc" not in repr({"header": lines})


def test_a_large_text_has_every_secret_blanked_wherever_it_starts_and_nothing_else(monkeypatch):
    """Runs of a text are sampled, not read at every position: each secret, at every offset
    in a long run of letters, glued or as a word, encoded or not, must still be found."""
    monkeypatch.setattr("livecall._safety.secrets._known", livecall._safety.secrets._Known())
    # the last has a short anchor: looked for on its own
    secrets = ["sk-live-4f9a8b7c6d5e4f3a", "hunter22", "conv_12cf6e88", "ab+cd/ef=gh"]
    for secret in secrets:
        livecall.Credential(secret)
    words = "the caller said the account number twice, then thanked the agent; ".split()
    pieces, expected = [], []
    for number in range(80_000):  # about 2.5 MB
        word = words[number % len(words)]
        if number % 4001 == 0:
            secret = secrets[(number // 4001) % len(secrets)]
            form = [secret, quote(secret, safe=""), json.dumps(secret)[1:-1]][number % 3]
            glued = len(secret) >= 16
            prefix = "x" * (number % 7) if glued else ""
            pieces.append(f"{prefix}{form} {word}")
            expected.append(f"{prefix}*** {word}")
        else:
            pieces.append(word + " " + "y" * (number % 50))
            expected.append(pieces[-1])
    text = " ".join(pieces)
    assert len(text) > 2_000_000
    assert livecall.redact(text) == " ".join(expected)


@pytest.mark.parametrize("offset", range(12))
@pytest.mark.parametrize(
    ("secret", "before", "after"),
    [("tok-0123456789abcdef", "q", "z"), ("hunter22", ".", "~")],  # long: glued; short: after non-word marks
)
def test_a_secret_at_any_offset_of_a_long_run_is_blanked(monkeypatch, offset, secret, before, after):
    monkeypatch.setattr("livecall._safety.secrets._known", livecall._safety.secrets._Known())
    livecall.Credential(secret)
    run = before * offset + secret + after * (offset * 3)
    blanked = before * offset + "***" + after * (offset * 3)
    assert livecall.redact(f"a {run} b {run}") == f"a {blanked} b {blanked}"


def _many_anchors(monkeypatch):
    """A registry holding more anchors than are looked for one by one: its texts' runs are sampled."""
    known = livecall._safety.secrets._Known()
    monkeypatch.setattr("livecall._safety.secrets._known", known)
    for number in range(livecall._safety.secrets._FEW_ANCHORS + 1):
        livecall.Credential(f"filler-{number:04d}-qwertyui")
    assert known._few is None
    return known


@pytest.mark.parametrize("offset", range(12))
@pytest.mark.parametrize(
    ("secret", "before", "after"),
    [("tok-0123456789abcdef", "q", "z"), ("hunter22", ".", "~")],
)
def test_among_many_secrets_one_at_any_offset_of_a_long_run_is_blanked(
    monkeypatch, offset, secret, before, after
):
    _many_anchors(monkeypatch)
    livecall.Credential(secret)
    run = before * offset + secret + after * (offset * 3)
    blanked = before * offset + "***" + after * (offset * 3)
    assert livecall.redact(f"a {run} b {run}—{run}") == f"a {blanked} b {blanked}—{blanked}"


@given(
    secrets=st.lists(st.text(alphabet="ab-_.~%+/ü0", min_size=8, max_size=24), min_size=1, max_size=4),
    text=st.text(alphabet="ab-_.~%+/ü0 \"'", max_size=200),
    at=st.integers(min_value=0, max_value=200),
)
def test_few_secrets_and_many_are_found_alike(secrets, text, at):
    """Each anchor looked for as it is, or the text's runs sampled: the same secrets are found."""
    few, many = livecall._safety.secrets._Known(), livecall._safety.secrets._Known()
    for number in range(livecall._safety.secrets._FEW_ANCHORS + 1):
        many.add(f"filler-{number:04d}-qwertyui")
    for secret in secrets:
        few.add(secret)
        many.add(secret)
    text = text[:at] + secrets[at % len(secrets)] + text[at:]
    values = {secret.value for secret in few.found_in(text)}
    assert few._few is not None and many._few is None
    assert values == {secret.value for secret in many.found_in(text)} - {
        f"filler-{number:04d}-qwertyui" for number in range(livecall._safety.secrets._FEW_ANCHORS + 1)
    }
    assert secrets[at % len(secrets)] in values
