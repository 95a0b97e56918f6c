"""``make dist``: wheels of livecall and every plugin, installed into a fresh venv that works.

No package index is asked: the wheels are built with the test environment's
setuptools, and the fresh venv finds livecall's dependencies, and only
those, through a ``.pth`` file pointing at copies of them taken from the
test environment.  The wheels' own metadata still has to name them right:
pip checks that every requirement is met before it installs anything.
"""

import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = sorted(path.name for path in (ROOT / "plugins").iterdir() if (path / "pyproject.toml").is_file())
DISTRIBUTIONS = ["livecall", *(f"livecall-{name}" for name in PLUGINS)]
#: Building four wheels and a venv: a bound, never a pause.
TIMEOUT = 300

pytestmark = pytest.mark.skipif(
    not (Path(sys.prefix) / ".installed").is_file() or shutil.which("make") is None,
    reason="make dist builds in a venv made by make install",
)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        ["make", "--no-print-directory", "-s", "dist", f"DIST={dist}", f"VENV={sys.prefix}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
    )
    return dist


def test_make_dist_builds_a_wheel_of_livecall_and_of_every_plugin(wheels):
    built = {re.sub(r"-[^-]+-py3-none-any\.whl$", "", path.name) for path in wheels.iterdir()}
    assert built == {name.replace("-", "_") for name in DISTRIBUTIONS}


def test_the_wheels_install_into_a_fresh_venv_and_work(wheels, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "livecall-test-dependencies.pth").write_text(f"{dependencies(tmp_path / 'deps')}\n")
    unrelated = ("PYTHON", "PIP_", "VIRTUAL_ENV")  # nothing of this environment leaks in
    env = {key: value for key, value in os.environ.items() if not key.startswith(unrelated)}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    install = subprocess.run(
        # This environment's pip, installing into the fresh venv (which has none: quicker to make).
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index"]
        + ["--find-links", str(wheels), *DISTRIBUTIONS],
        capture_output=True,
        text=True,
        env=env,
        timeout=TIMEOUT,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    def livecall(*args: str) -> str:
        result = subprocess.run(
            [bin_dir / "livecall", *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert livecall("--version") == f"livecall {metadata.version('livecall')}\n"
    listed = livecall("plugins")
    for name in PLUGINS:
        assert re.search(rf"^{name} \(livecall-{name} ", listed, re.M), listed
    where = subprocess.run(
        [python, "-c", "import livecall; print(livecall.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(where).resolve().is_relative_to(venv.resolve()), "not from the checkout"


def dependencies(target: Path) -> Path:
    """Copies of what livecall and its plugins need, from this environment, in ``target``."""
    target.mkdir()
    seen: set[str] = set()
    wanted = [Requirement(requirement) for name in DISTRIBUTIONS for requirement in requires(name)]
    while wanted:
        requirement = wanted.pop()
        name = normal(requirement.name)
        if name in seen or name in {normal(own) for own in DISTRIBUTIONS}:
            continue
        seen.add(name)
        distribution = metadata.distribution(requirement.name)
        for top in {Path(str(file)).parts[0] for file in distribution.files or ()} - {".."}:
            source = Path(str(distribution.locate_file(top)))
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source)
        wanted += [Requirement(requirement) for requirement in requires(distribution.metadata["Name"])]
    return target


def requires(name: str) -> list[str]:
    """The run-time requirements of ``name`` whose markers hold here, extras aside."""
    found = []
    for requirement in metadata.requires(name) or []:
        marker = Requirement(requirement).marker
        if marker is None or Marker(str(marker)).evaluate({"extra": ""}):
            found.append(requirement)
    return found


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
