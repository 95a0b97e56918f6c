"""``livecall.CredentialSource``: a token fetched afresh on every connection attempt."""

import sys
import textwrap

import pytest

import livecall
from livecall import CredentialSource, EndReason
from livecall.plugins import create_plugin_manager
from livecall.testing import Simulator

#: Prints ``rotated-token-N``, N counting its runs: a token service issuing a new token each time.
ROTATING = textwrap.dedent(
    """
    import pathlib, sys
    counter = pathlib.Path(sys.argv[1])
    n = int(counter.read_text() or 0) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    print(f"rotated-token-{n}")
    """
)


@pytest.fixture
def rotating_command(tmp_path):
    script = tmp_path / "token.py"
    script.write_text(ROTATING)
    return f"{sys.executable} {script} {tmp_path / 'count'}"


class Vault:
    """A plugin fetching the token itself."""

    def __init__(self, token):
        self.token = token
        self.asked = []

    @livecall.hookimpl
    def livecall_credential(self, provider, name):
        self.asked.append((provider, name))
        return self.token if (provider, name) == ("hiya", "token") else None


def test_each_connection_carries_the_token_the_command_printed_for_it(rotating_command, client_for):
    source = CredentialSource("hiya", "token", command=rotating_command)
    with Simulator("hiya", "screening+drop", join_timeout=0.2) as sim:

        def token():
            value = source()
            sim._credentials["token"] = value  # the server knows the newest token, as Hiya's does
            return value

        client = client_for(sim, token=token)
        client.run()
    assert client.call.end_reason is EndReason.ENDED
    accepted = [c.header("Authorization") for c in sim.connections if c.accepted]
    assert accepted[:2] == ["Bearer rotated-token-1", "Bearer rotated-token-2"]


def test_a_plugin_wins_over_the_command(rotating_command, monkeypatch):
    monkeypatch.setenv("HIYA_TOKEN", "environment-token")

    plugin_manager = create_plugin_manager()
    vault = Vault("vault-token-123")
    plugin_manager.register(vault)
    source = CredentialSource(
        "hiya", "token", command=rotating_command, env="HIYA_TOKEN", plugin_manager=plugin_manager
    )
    assert source() == "vault-token-123"
    vault.token = None  # the plugin has nothing this time: the command answers
    assert source() == "rotated-token-1"
    assert vault.asked == [("hiya", "token")] * 2


def test_the_environment_is_the_last_resort(monkeypatch):
    monkeypatch.setenv("HIYA_TOKEN", "environment-token")
    assert CredentialSource("hiya", "token", env="HIYA_TOKEN")() == "environment-token"


def test_the_value_is_a_secret_from_then_on(rotating_command):
    value = CredentialSource("hiya", "token", command=rotating_command)()
    assert livecall.redact(f"token {value}!") == "token ***!"


@pytest.mark.parametrize(
    "program, why",
    [
        ("-c 'import sys; print(\"leaked-secret-1\"); sys.exit(7)'", "exited with status 7"),
        ("-c 'print()'", "printed nothing"),
        ("-c 'import time; time.sleep(30)'", "did not answer within 0.5 s"),
    ],
)
def test_a_failing_command_is_named_and_its_output_is_not(program, why):
    source = CredentialSource("hiya", "token", command=f"{sys.executable} {program}", timeout=0.5)
    with pytest.raises(livecall.ConfigurationError) as caught:
        source()
    assert str(caught.value) == f"the hiya token command {sys.executable!r} {why}"
    assert "leaked" not in str(caught.value)


def test_a_command_that_worked_once_may_fail_for_a_while(tmp_path):
    flag = tmp_path / "ok"
    flag.write_text("")
    script = "import os, sys; print('token-123456') if os.path.exists(sys.argv[1]) else sys.exit(1)"
    source = CredentialSource("hiya", "token", command=f'{sys.executable} -c "{script}" {flag}')
    assert source() == "token-123456"
    flag.unlink()
    with pytest.raises(livecall.LivecallError) as caught:
        source()
    assert not isinstance(caught.value, livecall.ConfigurationError)  # the client retries it


def test_a_missing_program_or_an_empty_command_is_a_configuration_error():
    with pytest.raises(livecall.ConfigurationError, match="command is empty"):
        CredentialSource("hiya", "token", command="  ")
    with pytest.raises(livecall.ConfigurationError, match="'no-such-program-here' could not run"):
        CredentialSource("hiya", "token", command="no-such-program-here --flag")()


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf")])
def test_a_command_timeout_that_is_no_number_of_seconds_is_refused(timeout):
    with pytest.raises(livecall.ConfigurationError, match="timeout"):
        CredentialSource("hiya", "token", command="true", timeout=timeout)
