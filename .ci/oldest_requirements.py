"""Print ``name==floor`` for every run-time dependency in pyproject.toml and the bundled
plugins' (their ``livecall`` requirement aside: it is this checkout), one per line.

``make test-oldest`` installs these pins beside the package, so the test suite
runs on the oldest versions livecall claims to support; reading them from
pyproject.toml keeps the claim and the check from drifting apart.

TOML is read with ``tomllib`` (Python 3.11+) or ``tomli``, which the
development environment has on older Pythons (the ``test`` extra): the
Makefile runs this with that environment's Python, not the oldest one's.
"""

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

FLOOR = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([^,;\s]+)$")


def oldest_requirements(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as file:
        requirements = tomllib.load(file)["project"]["dependencies"]
    pins = []
    for requirement in requirements:
        if re.match(r"livecall(?![\w-])", requirement.strip()):
            continue
        match = FLOOR.match(requirement.strip())
        if match is None:
            raise SystemExit(f"{pyproject}: {requirement!r} needs a plain '>=' floor to be tested")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    pyprojects = [root / "pyproject.toml", *sorted(root.glob("plugins/*/pyproject.toml"))]
    print("\n".join(pin for pyproject in pyprojects for pin in oldest_requirements(pyproject)))
