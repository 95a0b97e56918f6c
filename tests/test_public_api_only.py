"""Plugins, bundled or built in, use livecall's public API only: they read like third-party ones.

Each module is parsed, not searched as text, so every spelling of a private
import is caught: ``import livecall._x``, ``from livecall._x import y``,
``from livecall import _x``, ``from livecall.testing._x import y``.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_MODULES = sorted(
    [*ROOT.joinpath("plugins").rglob("*.py"), *ROOT.joinpath("livecall", "default_plugins").rglob("*.py")]
)


def private_imports(source: str) -> Iterator[str]:
    """The dotted names of livecall a module imports that have a private part (``_x``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "livecall" and any(part.startswith("_") for part in parts[1:]):
                yield name


@pytest.mark.parametrize(
    "source, found",
    [
        ("import livecall._secrets", ["livecall._secrets"]),
        ("import livecall._codec._record as record", ["livecall._codec._record"]),
        ("from livecall._secrets import redact", ["livecall._secrets.redact"]),
        ("from livecall import _secrets, redact", ["livecall._secrets"]),
        ("from livecall.testing._server import Simulator", ["livecall.testing._server.Simulator"]),
        ("def f():\n    from livecall._frames import FrameReader", ["livecall._frames.FrameReader"]),
        ("import livecall\nfrom livecall import redact\nfrom livecall.testing import Simulator", []),
        ("from livecall_webhook._sender import Sender\nfrom . import _forwarder", []),
    ],
)
def test_every_spelling_of_a_private_import_is_found(source, found):
    assert list(private_imports(source)) == found


def test_the_plugins_are_all_checked():
    names = {path.relative_to(ROOT).as_posix() for path in PLUGIN_MODULES}
    assert {
        "livecall/default_plugins/output.py",
        "plugins/csv/livecall_csv.py",
        "plugins/logging/livecall_logging.py",
        "plugins/webhook/livecall_webhook/_forwarder.py",
    } <= names


@pytest.mark.parametrize("path", PLUGIN_MODULES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_no_plugin_imports_a_private_livecall_name(path):
    assert list(private_imports(path.read_text(encoding="utf-8"))) == []
