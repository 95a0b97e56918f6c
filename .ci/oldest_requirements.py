"""Print ``name==floor`` for every run-time dependency in setup.cfg, one per line.

``make test-oldest`` installs these pins beside the package, so the test suite
runs on the oldest versions livecall claims to support; reading them from
setup.cfg keeps the claim and the check from drifting apart.
"""
import configparser
import re
from pathlib import Path
from typing import List

FLOOR = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([^,;\s]+)$")


def oldest_requirements(setup_cfg: Path) -> List[str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(setup_cfg, encoding="utf-8")
    pins = []
    for requirement in parser["options"]["install_requires"].split("\n"):
        requirement = requirement.strip()
        if not requirement:
            continue
        match = FLOOR.match(requirement)
        if match is None:
            raise SystemExit(f"{setup_cfg}: {requirement!r} needs a plain '>=' floor to be tested")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    root = Path(__file__).resolve().parent.parent
    print("\n".join(oldest_requirements(root / "setup.cfg")))
