"""What a loopback provider gives its clients, the Simulator and the Replay alike:
its URL, the credentials it expects, and the client's arguments built of them."""

from typing import Optional

from ._provider import Provider

__all__ = ["LoopbackEndpoint"]


class LoopbackEndpoint:
    """A served provider: ``_spec``, ``_credentials`` and, once listening, ``_address``."""

    provider: str
    _spec: Provider
    _credentials: dict[str, str]
    _address: Optional[tuple[str, int]]

    @property
    def url(self) -> str:
        """Base URL, ``ws://127.0.0.1:PORT``, without a path."""
        host, port = self._listening()
        return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"

    @property
    def port(self) -> int:
        return self._listening()[1]

    @property
    def credentials(self) -> dict[str, str]:
        """The credentials it expects (a copy)."""
        return dict(self._credentials)

    def client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for the matching livecall client (HiyaClient / PhonicClient)."""
        return self._spec.client_kwargs(self.url, self._credentials)

    def watch_args(self, *extra: str) -> list[str]:
        """The ``livecall`` command-line arguments that watch it, then ``extra``.

        ``["watch", provider, "--url", url, ...]`` with every credential as a
        flag: fine for the local, made-up credentials, though real ones
        belong in the environment, out of ``ps``.
        """
        flags: list[str] = []
        for name, value in self.client_kwargs().items():
            flags += [f"--{name.replace('_', '-')}", value]
        return ["watch", self.provider, *flags, *extra]

    def _listening(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError(f"the {type(self).__name__} is not started")
        return self._address
