"""Credentials that expire: asked for afresh on every connection attempt.

A worker runs for days; Hiya's bearer token lasts about an hour.  The token
comes, in this order, from a plugin implementing ``livecall_credential``,
from ``--hiya-token-command`` (its standard output), or from the
environment.  Whatever they return is a secret: it is never logged.
"""

import os
import shlex
import subprocess
from typing import Callable, Optional

import pluggy

import livecall

__all__ = ["TokenCommand", "credential_source"]

#: Seconds a token command may take.
COMMAND_TIMEOUT = 10.0
#: Where each provider's credential falls back on.
ENVIRONMENT = {("hiya", "token"): "HIYA_TOKEN", ("phonic", "api_key"): "PHONIC_API_KEY"}


class TokenCommand:
    """Runs a command (no shell) and returns its standard output, stripped."""

    def __init__(self, command: str, timeout: float = COMMAND_TIMEOUT):
        self._argv = shlex.split(command)
        if not self._argv:
            raise livecall.ConfigurationError("the token command is empty")
        self._timeout = timeout

    def __call__(self) -> Optional[str]:
        try:
            done = subprocess.run(
                self._argv, capture_output=True, text=True, timeout=self._timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise livecall.LivecallError(f"the token command failed: {type(error).__name__}") from None
        if done.returncode != 0:
            # Its stderr is not shown: it might echo the secret.
            raise livecall.LivecallError(f"the token command exited with status {done.returncode}")
        token = done.stdout.strip()
        if token:
            livecall.Credential(token)  # remembered, so every log blanks it
        return token or None

    def __repr__(self) -> str:
        return f"TokenCommand({self._argv[0]!r} ...)"


def credential_source(
    plugin_manager: pluggy.PluginManager, provider: str, name: str, command: Optional[str]
) -> Optional[Callable[[], str]]:
    """A callable for the client's credential argument; None leaves the client to the environment."""
    hook = plugin_manager.hook.livecall_credential
    run = TokenCommand(command) if command else None
    if run is None and not hook.get_hookimpls():
        return None
    env = ENVIRONMENT.get((provider, name))

    def fetch() -> str:
        value = hook(provider=provider, name=name)
        if not value and run is not None:
            value = run()
        if not value and env:
            value = os.environ.get(env)
        if value:
            livecall.Credential(value)
        return value or ""

    return fetch
