"""Credentials that expire: fetched afresh on every connection attempt.

Hiya's bearer token lasts about an hour while a watch (or a worker) may run
for days, so a client is given a source to call rather than a value.  The
source asks, in this order, a plugin implementing ``livecall_credential``,
then a configured command (its standard output), then the environment.
Whatever it returns is a secret: it is blanked from every log and message.
"""

import os
import shlex
import subprocess
from typing import NoReturn, Optional

import pluggy

from .._safety.secrets import Credential
from .._wire.checks import seconds
from ..errors import ConfigurationError, LivecallError

__all__ = ["COMMAND_TIMEOUT", "CredentialSource"]

#: Seconds a credential command may take before it counts as failed.
COMMAND_TIMEOUT = 10.0


class CredentialSource:
    """A callable for a client's credential argument (``HiyaClient(token=...)``).

    ``provider`` and ``name`` are what the ``livecall_credential`` hook is
    asked for (``"hiya"``, ``"token"``); ``command`` is run without a shell
    (split as a shell would) for at most ``timeout`` seconds; ``env`` names
    the environment variable to fall back on.  A command that fails before
    it ever succeeded is a configuration error, which ends the watch; one
    that worked before and fails now may be a passing outage, so the error
    it raises lets the client retry with its back-off.  Neither message
    holds the command's output: it may hold the secret.
    """

    def __init__(
        self,
        provider: str,
        name: str,
        *,
        command: Optional[str] = None,
        env: Optional[str] = None,
        plugin_manager: Optional[pluggy.PluginManager] = None,
        timeout: float = COMMAND_TIMEOUT,
    ):
        self._argv = shlex.split(command) if command is not None else None
        if self._argv is not None and not self._argv:
            raise ConfigurationError(f"the {provider} {name.replace('_', ' ')} command is empty")
        timeout = seconds("the credential command's timeout", timeout)
        self._provider = provider
        self._name = name
        self._env = env
        self._plugin_manager = plugin_manager
        self._timeout = timeout
        self._worked = False

    def __call__(self) -> str:
        value = self._from_plugins() or self._from_command() or self._from_environment()
        if value:
            Credential(value)  # remembered, so that every log and message blanks it
        return value or ""

    def _from_plugins(self) -> Optional[str]:
        if self._plugin_manager is None:
            return None
        value: Optional[str] = self._plugin_manager.hook.livecall_credential(
            provider=self._provider, name=self._name
        )
        return value or None

    def _from_environment(self) -> Optional[str]:
        return os.environ.get(self._env) if self._env else None

    def _from_command(self) -> Optional[str]:
        argv = self._argv
        if argv is None:
            return None
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self._timeout, check=False)
        except subprocess.TimeoutExpired:
            self._failed(argv[0], f"did not answer within {self._timeout:g} s")
        except OSError as error:
            self._failed(argv[0], f"could not run ({error.strerror or type(error).__name__})")
        if done.returncode != 0:  # its stderr is not shown: it might echo the secret
            self._failed(argv[0], f"exited with status {done.returncode}")
        value = done.stdout.strip()
        if not value:
            self._failed(argv[0], "printed nothing")
        self._worked = True
        return value

    def _failed(self, program: str, why: str) -> NoReturn:
        message = f"the {self._provider} {self._name.replace('_', ' ')} command {program!r} {why}"
        raise (LivecallError if self._worked else ConfigurationError)(message)

    def __repr__(self) -> str:
        command = f"command={self._argv[0]!r} ..." if self._argv else "no command"
        return f"CredentialSource({self._provider!r}, {self._name!r}, {command}, env={self._env!r})"
