"""The documentation against the code: everything public is documented, every example runs.

Examples are the ``.. code-block::`` directives of ``docs/*.rst``, run page by
page in order, in one namespace per page, in a fresh directory:

- ``python`` is executed; a ``text`` block captioned ``Output`` right after it
  must match what it printed (``...`` matches anything; times and made-up ids
  may differ).  Hook implementations it defines are run as a plugin, through
  real watches and the ``livecall`` command: each must be called, none may raise.
- ``pycon`` is run as a doctest.
- A block captioned with a file name (``livecall_keywords.py``,
  ``pyproject.toml``) is written into that directory: a tutorial's project.
- ``console``: each ``$`` line is a command.  ``livecall ...`` runs in this
  process (``PARSED_ONLY`` commands are only parsed) and must exit with 0;
  ``pip install livecall[EXTRA]`` must name extras that exist; ``pip install -e
  .`` installs the tutorial's project (its entry points) and ``pytest`` runs
  its tests.  ``pip install`` of livecall itself is from a checkout (``.``) or
  from the wheels of ``make dist`` (``--find-links dist``): it is not on the
  package index.  ``make dist`` must be a target of the Makefile (its wheels
  are tested in ``test_dist.py``).  ``NAME=value`` before a command sets the environment.  An
  ``Output`` block after it is compared as for ``python``.

Clients built without ``url=`` reach loopback simulators, started afresh for
each block, that expect the credentials in ``ENVIRONMENT``; the simulated
Hiya call waits for a join only in examples that mention joining.
"""

import argparse
import contextlib
import doctest
import enum
import inspect
import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import attrs
import pytest

import livecall
from livecall import hiya, hookspecs, phonic
from livecall.cli import main
from livecall.cli._parser import build_parser, global_options
from livecall.plugins import DISABLE_AUTOLOAD_ENV, create_plugin_manager
from livecall.testing import Simulator

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.rst"))

#: What the examples find in the environment, and the simulators expect.
ENVIRONMENT = {
    "HIYA_TOKEN": "eyJhbGciOiJIUzI1NiJ9.docs-example",
    "HIYA_CONVERSATION_TOKEN": "lct_docs-example",
    "HIYA_USER_ID": "user-1234",
    "PHONIC_API_KEY": "ph_docs-example",
}
#: The conversation the Phonic examples watch: the one in Phonic's own docs.
CONVERSATION_ID = "conv_12cf6e88-c254-4d3e-a149-ddf1bdd2254c"
#: Scenarios a plugin example is run through: every hook of a call gets called.
PLUGIN_WATCHES = [("hiya", "drop"), ("phonic", "drop"), ("hiya", "auth-close")]
COMMAND_LINE_HOOKS = {
    "livecall_addoption",
    "livecall_register_commands",
    "livecall_configure",
    "livecall_unconfigure",
}
FAST = dict(ping_interval=5.0, ping_timeout=5.0, close_timeout=1.0, backoff=livecall.Backoff(0.01, 0.05))
LANGUAGES = {"python", "pycon", "console", "toml", "text"}
OUTPUT_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

_RULE = re.compile(r"([=\-~^\"'`#*+])\1+")
_DIRECTIVE = re.compile(r"( *)\.\. code-block:: *(\S+) *")
_OPTION = re.compile(r" +:([\w-]+): *(.*)")


def headings(page: Path) -> list[str]:
    """Every section title of a page."""
    lines = page.read_text(encoding="utf-8").splitlines()
    return [
        title.strip()
        for title, rule in zip(lines, lines[1:])
        if title.strip() and _RULE.fullmatch(rule) and len(rule) >= len(title.strip())
    ]


@attrs.frozen
class Block:
    page: str
    line: int  # of the first line of code
    language: str
    options: dict[str, str]
    code: str

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"

    @property
    def filename(self) -> Optional[str]:
        caption = self.options.get("caption", "")
        return caption if re.fullmatch(r"[\w./-]+\.\w+", caption) else None


def code_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        match = _DIRECTIVE.fullmatch(lines[i])
        i += 1
        if match is None:
            continue
        indent, language = len(match.group(1)), match.group(2)
        options = {}
        while i < len(lines) and _OPTION.fullmatch(lines[i]):
            name, value = _OPTION.fullmatch(lines[i]).groups()
            options[name] = value
            i += 1
        while i < len(lines) and not lines[i].strip():
            i += 1
        start = i
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            i += 1
        code = textwrap.dedent("\n".join(lines[start:i])).strip("\n") + "\n"
        blocks.append(Block(page.name, start + 1, language, options, code))
    return blocks


# --- everything public is documented ---------------------------------------------


def hook_names() -> list[str]:
    return sorted(name for name, value in vars(hookspecs).items() if hasattr(value, "livecall_spec"))


def event_classes() -> list[str]:
    return sorted(
        name
        for name in livecall.__all__
        if isinstance(getattr(livecall, name), type) and issubclass(getattr(livecall, name), livecall.Event)
    )


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_has_a_section_titled_with_its_signature(hook):
    signature = f"{hook}({', '.join(inspect.signature(getattr(hookspecs, hook)).parameters)})"
    assert signature in headings(DOCS / "hooks.rst")


def test_no_section_documents_a_hook_that_does_not_exist():
    documented = {
        title.split("(")[0] for title in headings(DOCS / "hooks.rst") if title.startswith("livecall_")
    }
    assert documented - set(hook_names()) == set()


@pytest.mark.parametrize("name", event_classes())
def test_every_event_class_is_documented(name):
    text = (DOCS / "events.rst").read_text(encoding="utf-8")
    assert f".. livecall-class:: {name}\n" in text
    assert name in headings(DOCS / "events.rst") or name == "Event"


def test_every_public_name_is_documented():
    text = "".join(page.read_text(encoding="utf-8") for page in PAGES)
    documented = set(re.findall(r"\.\. (?:auto\w+|py:\w+):: livecall\.(\w+)", text))
    documented |= set(re.findall(r"\.\. livecall-class:: (\w+)", text))
    assert set(livecall.__all__) - documented == set()


def test_the_python_api_page_and_livecall_all_agree():
    """The reference lists what ``import livecall`` offers: no name missing, none extra.

    Events are the events page's; every other name of ``livecall.__all__`` is
    documented on the Python API page, or named there with a link to the page
    that documents it; and every top-level name that page documents is
    exported.
    """
    api = (DOCS / "python-api.rst").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. (?:auto\w+|py:\w+):: livecall\.(\w+)$", api, re.M))
    linked = set(re.findall(r":(?:class|func|data|exc):`~?livecall\.(\w+)`", api))
    events_page = (DOCS / "events.rst").read_text(encoding="utf-8")
    events = set(re.findall(r"\.\. livecall-class:: (\w+)", events_page))
    assert documented - set(livecall.__all__) == set()
    assert set(livecall.__all__) - events - documented - linked == set()


def test_every_name_of_the_testing_toolkit_is_documented():
    text = "".join(page.read_text(encoding="utf-8") for page in PAGES)
    documented = set(re.findall(r"\.\. auto\w+:: livecall\.testing\.(\w+)", text))
    assert set(livecall.testing.__all__) - documented == set()


def command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command of a parser, as the words after ``livecall``, the parser itself first."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                yield from command_paths(subparser, path + (name,))


@pytest.mark.parametrize(
    "command",
    list(command_paths(build_parser(create_plugin_manager(autoload=False), global_options()))),
    ids=" ".join,
)
def test_every_command_has_a_section_with_its_help(command):
    title = " ".join(("livecall",) + command)
    assert title in headings(DOCS / "cli.rst")
    assert f".. livecall-help::{''.join(' ' + word for word in command)}\n" in (DOCS / "cli.rst").read_text()


def project_table(pyproject: Path) -> dict[str, Any]:
    """The ``[project]`` table of a pyproject.toml: a package's metadata."""
    with pyproject.open("rb") as file:
        return tomllib.load(file)["project"]


def bundled_plugins() -> list[str]:
    """The module of each plugin in ``plugins/``, from its entry point."""
    modules = []
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        modules += project_table(pyproject)["entry-points"]["livecall"].values()
    return modules


@pytest.mark.parametrize("module", bundled_plugins())
def test_every_bundled_plugin_has_its_options_and_commands_documented(module):
    pytest.importorskip(module, reason="the bundled plugins are not installed")
    text = (DOCS / "bundled-plugins.rst").read_text(encoding="utf-8")
    assert f".. livecall-plugin-options:: {module}\n" in text
    pm = create_plugin_manager(modules=[module], autoload=False)
    built_in = set(command_paths(build_parser(create_plugin_manager(autoload=False), global_options())))
    for command in set(command_paths(build_parser(pm, global_options()))) - built_in:
        assert " ".join(("livecall",) + command) in headings(DOCS / "bundled-plugins.rst")


def test_every_csv_column_is_documented():
    livecall_csv = pytest.importorskip("livecall_csv", reason="the bundled plugins are not installed")
    text = (DOCS / "bundled-plugins.rst").read_text(encoding="utf-8")
    assert [column for column in livecall_csv.COLUMNS if f"* - ``{column}``" not in text] == []


def test_every_example_is_in_a_language_the_tests_run():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for directive in (".. code::", ".. sourcecode::", ".. literalinclude::", ".. testcode::"):
            assert directive not in text, f"{page.name}: use code-block, which test_docs runs"
        for block in code_blocks(page):
            assert block.language in LANGUAGES, f"{block.where}: teach test_docs to run {block.language}"


# --- every example runs ---------------------------------------------------------


def pages_with_examples() -> list[Path]:
    return [page for page in PAGES if code_blocks(page)]


@pytest.mark.parametrize("page", pages_with_examples(), ids=lambda page: page.stem)
def test_examples_run(page, monkeypatch, tmp_path):
    if page.name == "bundled-plugins.rst":
        for module in bundled_plugins():
            pytest.importorskip(module, reason="the bundled plugins are not installed")
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV, raising=False)
    monkeypatch.setattr("livecall.cli._demo.PACE", 0, raising=False)  # the demo, flat out
    monkeypatch.chdir(tmp_path)  # where examples write their files
    # livecall blanks every credential this process has used wherever it appears in
    # output: other tests' fake tokens must not blank words of the examples' output.
    monkeypatch.setattr("livecall._safety.secrets._known", livecall._safety.secrets._Known())
    with contextlib.ExitStack() as stack:
        ExampleRunner(page, tmp_path, stack, monkeypatch).run_all()


class ExampleRunner:
    """Runs one page's examples in order; the page's tutorial project lives in ``project``."""

    def __init__(self, page: Path, project: Path, stack: contextlib.ExitStack, monkeypatch: Any):
        self.page = page
        self.project = project
        self.stack = stack
        self.monkeypatch = monkeypatch
        self.namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}

    def run_all(self) -> None:
        blocks = code_blocks(self.page)
        for block, following in zip(blocks, blocks[1:] + [None]):
            shown = following.code if following and following.options.get("caption") == "Output" else None
            if block.filename:
                target = self.project / block.filename
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code, encoding="utf-8")
            elif block.language == "python":
                self.run_python(block, shown)
            elif block.language == "pycon":
                self.run_doctest(block)
            elif block.language == "console":
                self.run_console(block, shown)

    def fresh_simulators(self, block: Block) -> None:
        """New simulators behind the default URLs: each example gets a whole call.

        The Hiya call waits for the user to join it only in examples that join it.
        """
        hiya_sim = self.stack.enter_context(
            Simulator(
                "hiya",
                token=ENVIRONMENT["HIYA_TOKEN"],
                conversation_token=ENVIRONMENT["HIYA_CONVERSATION_TOKEN"],
                user_id=ENVIRONMENT["HIYA_USER_ID"],
                join_timeout=5 if "join" in block.code else 0,
            )
        )
        phonic_sim = self.stack.enter_context(
            Simulator("phonic", conversation_id=CONVERSATION_ID, api_key=ENVIRONMENT["PHONIC_API_KEY"])
        )
        self.monkeypatch.setattr(hiya, "DEFAULT_URL", hiya_sim.url)
        self.monkeypatch.setattr(phonic, "DEFAULT_URL", phonic_sim.url)

    def run_python(self, block: Block, shown: Optional[str]) -> None:
        self.fresh_simulators(block)
        before = dict(self.namespace)
        code = compile("\n" * (block.line - 1) + block.code, str(DOCS / block.page), "exec")
        with printed() as output:
            exec(code, self.namespace)
        check_output(block, output.getvalue(), shown)
        impls = {
            name: value
            for name, value in self.namespace.items()
            if hasattr(value, "livecall_impl") and before.get(name) is not value
        }
        if impls:
            exercise_plugin(impls, block)

    def run_doctest(self, block: Block) -> None:
        self.fresh_simulators(block)
        test = doctest.DocTestParser().get_doctest(
            block.code, self.namespace, block.where, str(DOCS / block.page), block.line - 1
        )
        report = io.StringIO()
        runner = doctest.DocTestRunner(optionflags=OUTPUT_FLAGS)
        runner.run(test, out=report.write, clear_globs=False)
        assert not runner.failures, report.getvalue()

    def run_console(self, block: Block, shown: Optional[str]) -> None:
        """Each ``$`` command as a shell would run it, in the tutorial project's directory."""
        with printed() as output:
            for line in shell_commands(block.code):
                words = shlex.split(os.path.expandvars(line))
                if words[-1] == "&":  # in the background: started like any other, here in turn
                    words.pop()
                env = {}
                while "=" in words[0]:
                    name, value = words.pop(0).split("=", 1)
                    env[name] = value
                if env.pop("PYTHONPATH", None) == ".":
                    self.monkeypatch.syspath_prepend(str(self.project))
                with pytest.MonkeyPatch.context() as command_env:
                    for name, value in env.items():
                        command_env.setenv(name, value)
                    self.run_command(words, block)
        check_output(block, output.getvalue(), shown)

    def run_command(self, argv: list[str], block: Block) -> None:
        if argv[:3] == ["pip", "install", "-e"]:
            install_project(self.project)
            self.monkeypatch.syspath_prepend(str(self.project))
        elif argv[:2] == ["pip", "install"]:
            check_requirements(argv[2:], block)
        elif argv[0] == "make":
            targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
            assert set(argv[1:]) <= set(targets), f"{block.where}: the Makefile has no target {argv[1:]}"
        elif argv == ["pytest"]:
            run_project_tests(self.project)
        elif argv[0] == "livecall":
            self.fresh_simulators(block)
            run_livecall(argv[1:], block)
        elif argv[0] in RUN_ELSEWHERE:
            assert block.page == "workers.rst", f"{block.where}: {argv[0]} runs in the workers' recipe only"
        else:
            raise AssertionError(f"{block.where}: test_docs does not know how to check {argv[0]!r}")


#: What differs from run to run, and what the docs show in its place is compared as.
VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "TIMESTAMP"),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "HH:MM:SS"),
    (re.compile(r"\bcall_[0-9a-f]{16}\b"), "call_ID"),
]
#: The join's ack: where it lands among the screening lines depends on when the join went out
#: (the simulator answers it at once, and runs in this process): compared apart from the order.
MOVABLE = re.compile(r"^.*  --         joined the call\n", re.MULTILINE)


def check_output(block: Block, printed: str, shown: Optional[str]) -> None:
    """What the example printed must be what the docs show after it, but for times, made-up
    ids and where the join's ack lands; ``...`` matches anything."""
    if shown is None:
        return
    normal = {}
    for name, text in (("printed", printed), ("shown", shown)):
        for pattern, replacement in VARYING:
            text = pattern.sub(replacement, text)
        normal[name] = text
    assert len(MOVABLE.findall(printed)) >= len(MOVABLE.findall(shown)), (  # "..." may stand for one
        f"{block.where} printed:\n{printed}\nbut the docs show:\n{shown}"
    )
    normal = {name: MOVABLE.sub("", text) for name, text in normal.items()}
    assert doctest.OutputChecker().check_output(normal["shown"], normal["printed"], OUTPUT_FLAGS), (
        f"{block.where} printed:\n{printed}\nbut the docs show:\n{shown}"
    )


@contextlib.contextmanager
def printed() -> Iterator[io.StringIO]:
    """What the example prints, from any thread (hooks print on the dispatcher thread)."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        yield output


# --- plugin examples: run their hooks in real watches -------------------------------


class Failures:
    """Records what the example plugin raised, as livecall reports it."""

    def __init__(self, plugin_name: str) -> None:
        self.plugin_name = plugin_name
        self.errors: list[BaseException] = []

    @livecall.hookimpl
    def livecall_error(self, call, error):
        if isinstance(error, livecall.PluginError) and error.plugin == self.plugin_name:
            self.errors.append(error.__cause__)


def exercise_plugin(impls: dict[str, Any], block: Block) -> None:
    """Every hook the example implements must be called, and none may raise.

    The call hooks run in watches of ``PLUGIN_WATCHES``; the command line hooks
    in ``livecall -p PLUGIN watch phonic`` and each command the plugin adds.
    """
    name = f"docs_example_{block.line}"
    plugin = types.ModuleType(name)
    for hook, function in impls.items():
        setattr(plugin, hook, function)
    failures = Failures(name)
    codes = {inspect.unwrap(function).__code__: hook for hook, function in impls.items()}
    with called_functions(codes) as called, printed():
        for provider, scenario in PLUGIN_WATCHES:
            watch(provider, scenario, [failures, plugin])
        if COMMAND_LINE_HOOKS & set(impls):
            run_commands_of(plugin, block)
    assert not failures.errors, f"{block.where}: the example raised {failures.errors[0]!r}"
    assert called == set(impls), f"{block.where}: hooks never called: {sorted(set(impls) - called)}"


def run_commands_of(plugin: types.ModuleType, block: Block) -> None:
    """``livecall -p PLUGIN`` running a watch, then each command the plugin adds, bare."""
    name = plugin.__name__
    sys.modules[name] = plugin  # where ``-p`` finds it
    try:
        with Simulator("phonic") as sim:
            flags = [f"--{key.replace('_', '-')}={value}" for key, value in sim.client_kwargs().items()]
            run_livecall(["-p", name, "watch", "phonic", *flags], block)
        built_in = set(command_paths(build_parser(create_plugin_manager(autoload=False), global_options())))
        with_plugin = build_parser(create_plugin_manager(modules=[name], autoload=False), global_options())
        for command in sorted(set(command_paths(with_plugin)) - built_in):
            run_livecall(["-p", name, *command], block)
    finally:
        del sys.modules[name]


def watch(provider: str, scenario: str, plugins: list[Any]) -> None:
    options = dict(join_timeout=0) if provider == "hiya" and scenario != "auth-close" else {}
    with Simulator(provider, scenario, **options) as sim:
        client_class = livecall.HiyaClient if provider == "hiya" else livecall.PhonicClient
        client = client_class(**sim.client_kwargs(), plugins=plugins, **FAST)
        try:
            client.run()
        except livecall.AuthenticationError:
            assert scenario.startswith("auth")


@contextlib.contextmanager
def called_functions(codes: dict[Any, str]) -> Iterator[set[str]]:
    """The names in ``codes`` whose code ran, in this thread or in threads started meanwhile."""
    called: set[str] = set()

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in codes:
            called.add(codes[frame.f_code])

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        yield called
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


# --- files of a tutorial project ---------------------------------------------------


def entry_points(pyproject: str) -> dict[str, dict[str, str]]:
    """``[project.entry-points.GROUP]`` tables of a pyproject.toml (only ``name = "value"`` lines)."""
    groups: dict[str, dict[str, str]] = {}
    current: Optional[dict[str, str]] = None
    for line in pyproject.splitlines():
        table = re.fullmatch(r"\[project\.entry-points\.\"?([\w.-]+)\"?\]", line.strip())
        if table:
            current = groups.setdefault(table.group(1), {})
        elif line.startswith("["):
            current = None
        elif current is not None and "=" in line:
            key, value = (part.strip().strip('"') for part in line.split("=", 1))
            current[key] = value
    return groups


def install_project(project: Path) -> None:
    """What ``pip install -e .`` gives importlib.metadata: a ``.dist-info`` with the
    project's name, version and entry points, beside its code."""
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    name = re.search(r'^name = "([^"]+)"', pyproject, re.M).group(1)
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    dist_info = project / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir(exist_ok=True)
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items())
            for group, points in entry_points(pyproject).items()
        )
    )


def run_project_tests(project: Path) -> None:
    """The tutorial's tests, run by pytest as their author would, in a process of their own."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- shell examples ---------------------------------------------------------------


#: Commands that are only parsed: some serve until stopped, some need a server beyond the docs' own.
PARSED_ONLY = {"simulate", "replay", "webhook-replay", "worker", "enqueue", "status", "requeue"}
#: The workers page's recipe, run for real, with a Redis, by plugins/redis/tests/test_recipe.py.
RUN_ELSEWHERE = {"redis-server", "redis-cli", "kill"}


def shell_commands(code: str) -> list[str]:
    """The ``$`` commands of a console block, each joined from the lines its ``\\`` continues."""
    commands: list[str] = []
    continuing = False
    for line in code.splitlines():
        if continuing:
            commands[-1] += " " + line.strip()
        elif line.startswith("$ "):
            commands.append(line[2:])
        else:
            continue  # output
        continuing = commands[-1].endswith("\\")
        if continuing:
            commands[-1] = commands[-1][:-1].rstrip()
    return commands


def run_livecall(args: list[str], block: Block) -> None:
    """The command, in this process, unless it is one of ``PARSED_ONLY``."""
    if args[0] in PARSED_ONLY:
        build_parser(create_plugin_manager(), global_options()).parse_args(args)
        return
    status = main(args)
    assert status == 0, f"{block.where}: livecall {shlex.join(args)} exited with {status}"


def check_requirements(arguments: list[str], block: Block) -> None:
    """``pip install`` of livecall, with extras it has, and of bundled plugins: from a
    checkout (``.``, ``./plugins/NAME``) or from the wheels of ``make dist``
    (``--find-links dist``), never from the package index, where they are not."""
    known = set(project_table(ROOT / "pyproject.toml")["optional-dependencies"])
    from_wheels = arguments[:2] == ["--find-links", "dist"]
    plugins = {path.name for path in (ROOT / "plugins").iterdir() if (path / "pyproject.toml").is_file()}
    for requirement in arguments[2:] if from_wheels else arguments:
        match = re.fullmatch(r"(livecall|\.)(?:\[([\w,]+)\])?", requirement)
        plugin = re.fullmatch(r"(?:livecall-|\./plugins/)(\w+)", requirement)
        assert match or plugin, f"{block.where}: test_docs cannot check pip install {requirement!r}"
        from_index = requirement.startswith("livecall") and not from_wheels
        assert not from_index, f"{block.where}: {requirement} is not on the package index"
        if plugin:
            assert plugin.group(1) in plugins, f"{block.where}: no bundled plugin {plugin.group(1)!r}"
            continue
        extras = set(match.group(2).split(",")) if match.group(2) else set()
        assert extras <= known, f"{block.where}: livecall has no extra {sorted(extras - known)}"


@pytest.mark.parametrize(
    "name", [name for name in livecall.__all__ if isinstance(getattr(livecall, name), enum.EnumMeta)]
)
def test_every_member_of_a_public_enum_has_its_meaning(name):
    """The reference tables' "Meaning" column comes from the ``#:`` comment of each member."""
    pycode = pytest.importorskip("sphinx.pycode", reason="the docs tools are not installed")
    cls = getattr(livecall, name)
    comments = pycode.ModuleAnalyzer.for_module(cls.__module__).find_attr_docs()
    assert [member.name for member in cls if not comments.get((cls.__name__, member.name))] == []


def test_the_site_has_wide_code_and_copy_buttons_that_leave_prompts_out():
    """Furo lets code blocks use the page's width; sphinx-copybutton copies commands only."""
    conf: dict[str, Any] = {"__file__": str(DOCS / "conf.py")}
    exec(compile((DOCS / "conf.py").read_text(), str(DOCS / "conf.py"), "exec"), conf)
    assert conf["html_theme"] == "furo"
    assert "sphinx_copybutton" in conf["extensions"]
    assert conf["copybutton_prompt_text"] == "$ " and conf["copybutton_only_copy_prompt_lines"]
    docs_extra = " ".join(project_table(ROOT / "pyproject.toml")["optional-dependencies"]["docs"])
    assert "furo" in docs_extra and "sphinx-copybutton" in docs_extra, "make install installs them"


#: The widest code line the site shows without a sideways scroll bar, in characters.  At
#: 1280 px furo shows the sidebar and hides the table of contents; its content column is 46em
#: (736 px at the 16 px root size), and a code block takes all of it less its padding (0.875rem
#: each side) and border: about 706 px, in a monospace font at 81.25% (13 px).  The fonts of
#: furo's monospace stack (SFMono, Menlo, Liberation Mono) are 0.6 em a character, 7.8 px:
#: 90 characters.  Two are kept for rounding and for Consolas's wider bold.
PAGE_COLUMNS = 88


def typed_lines(block: Block) -> list[str]:
    """The lines of a block that a reader types, copies or reads as code; not a program's output,
    which is shown as the program prints it."""
    lines = block.code.splitlines()
    if block.language == "console":
        return [line for line in lines if line.startswith(("$ ", " "))]
    if block.language == "pycon":
        return [line for line in lines if line.startswith((">>>", "..."))]
    return lines if block.language in ("python", "toml") else []


def test_no_code_line_is_wider_than_the_page():
    """A wider line scrolls sideways at 1280 px: wrap a command with ``\\``, break Python
    inside its brackets, or shorten a name."""
    wide = [
        f"{block.where}: {len(line)} characters: {line}"
        for page in PAGES
        for block in code_blocks(page)
        for line in typed_lines(block)
        if len(line) > PAGE_COLUMNS
    ]
    assert wide == []


def test_console_commands_join_their_continuation_lines():
    code = "$ livecall watch phonic \\\n      --conversation-id conv_1 &\nprinted\n$ livecall plugins\n"
    assert shell_commands(code) == ["livecall watch phonic --conversation-id conv_1 &", "livecall plugins"]
