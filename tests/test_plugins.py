"""Plugin loading (entry points, -p, disabling) and isolation of failing plugins."""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pluggy
import pytest

import livecall
from livecall import Transcript
from livecall.plugins import (
    DISABLE_AUTOLOAD_ENV,
    PLUGINS_ENV,
    UnknownHookError,
    create_plugin_manager,
    get_plugins,
)
from livecall.testing import Exploding, Simulator


def test_a_raising_plugin_costs_the_others_nothing(plugin_manager, recorder, caplog):
    plugin_manager.register(Exploding(), name="exploding")
    seen = []
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        client = livecall.HiyaClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        client.on(livecall.Event, lambda call, event: seen.append(event))
        with caplog.at_level(logging.ERROR, logger="livecall"):
            client.run()
    events = recorder.events()
    assert events and seen == events, "the recorder and the callback saw every event"
    assert recorder.of("transcript") == recorder.events(Transcript)
    failures = recorder.of("error")
    assert {f.plugin for f in failures} == {"exploding"}
    assert len(failures) == len(events) + len(recorder.events(Transcript))
    assert {f.hook for f in failures} == {"livecall_event", "livecall_transcript"}
    assert isinstance(failures[0].__cause__, RuntimeError)
    assert any("exploding" in r.getMessage() and "boom" in r.getMessage() for r in caplog.records)
    assert client.call.end_reason is livecall.EndReason.ENDED


class _PicksItsArguments:
    """Hook implementations taking some of their hook's arguments, in an order of their own."""

    def __init__(self):
        self.got = []

    @livecall.hookimpl
    def livecall_event(self, event):
        self.got.append(("event", type(event)))

    @livecall.hookimpl
    def livecall_transcript(self, transcript, call):
        self.got.append(("transcript", type(transcript), type(call)))


def test_an_implementation_gets_the_arguments_it_names_in_its_own_order(plugin_manager, recorder):
    picky = _PicksItsArguments()
    plugin_manager.register(picky)
    with Simulator("hiya", "screening", join_timeout=0.2) as sim:
        livecall.HiyaClient(**sim.client_kwargs(), plugin_manager=plugin_manager).run()
    transcripts = recorder.events(Transcript)
    assert transcripts, "the scenario has transcripts"
    assert [entry for entry in picky.got if entry[0] == "event"] == [
        ("event", type(event)) for event in recorder.events()
    ]
    assert [entry for entry in picky.got if entry[0] == "transcript"] == [
        ("transcript", Transcript, livecall.Call)
    ] * len(transcripts)


def test_a_raising_callback_is_reported_by_name(plugin_manager, recorder):
    def broken(call, event):
        raise ValueError("nope")

    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        client.on(Transcript, broken)
        client.run()
    failures = recorder.of("error")
    assert failures and all(f.plugin.endswith("broken") and f.hook == "callback" for f in failures)
    assert len(failures) == len(recorder.events(Transcript))


def test_callbacks_match_subclasses_and_work_as_decorators(plugin_manager):
    got = []

    def everything(call, event):
        got.append(type(event))

    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        decorated = client.on(livecall.Event)(everything)
        client.run()
    assert decorated is everything, "the decorator hands the function back unchanged"
    assert livecall.ConversationUpdated in got and Transcript in got


def test_wrapper_implementations_are_refused_by_name(plugin_manager):
    class Wrapping:
        @livecall.hookimpl(hookwrapper=True)
        def livecall_event(self, call, event):
            yield

    plugin_manager.register(Wrapping(), name="wrapping")
    client = livecall.PhonicClient("conv_1", api_key="key-1", plugin_manager=plugin_manager)
    with pytest.raises(livecall.PluginError, match="wrapping.*cannot be wrappers"):
        client.start()
    assert client._hub is None, "a refused watch never takes a share of the hub"


def test_get_plugins_lists_names_and_hooks(recorder):
    pm = create_plugin_manager(autoload=False)
    pm.register(recorder, name="recorder")
    listed = {info["name"]: info for info in get_plugins(pm)}
    assert "livecall_event" in listed["recorder"]["hooks"]
    assert "livecall_configure" not in listed["recorder"]["hooks"]


@pytest.fixture
def installed_plugin(tmp_path):
    """A real distribution on sys.path whose entry point records that it was imported."""
    (tmp_path / "fake_livecall_plugin.py").write_text(
        textwrap.dedent(
            """
            import os
            open(os.environ["MARKER"], "a").write("imported\\n")
            import livecall

            @livecall.hookimpl
            def livecall_event(call, event):
                pass
            """
        )
    )
    dist = tmp_path / "fake_livecall_plugin-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-livecall-plugin\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[livecall]\nfake = fake_livecall_plugin\n")
    return tmp_path


def _imports(path, code, **env):
    marker = path / "marker"
    if marker.exists():
        marker.unlink()
    environment = {"PYTHONPATH": str(path), "MARKER": str(marker), "PATH": "/usr/bin:/bin", **env}
    result = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return marker.exists(), result.stdout


def test_importing_livecall_loads_no_plugin(installed_plugin):
    imported, _ = _imports(installed_plugin, "import livecall")
    assert not imported


def test_entry_point_plugins_load_on_first_use_and_are_listed(installed_plugin):
    code = (
        "from livecall.plugins import get_plugins;"
        "print([(p['name'], p.get('distribution'), p.get('version')) for p in get_plugins()])"
    )
    imported, out = _imports(installed_plugin, code)
    assert imported
    assert "('fake', 'fake-livecall-plugin', '1.2.3')" in out


def test_autoload_can_be_disabled_by_environment(installed_plugin):
    code = "from livecall.plugins import create_plugin_manager; create_plugin_manager()"
    imported, _ = _imports(installed_plugin, code, LIVECALL_DISABLE_PLUGIN_AUTOLOAD="1")
    assert not imported


def test_one_plugin_can_be_disabled_by_name(installed_plugin):
    code = (
        "from livecall.plugins import create_plugin_manager;"
        "pm = create_plugin_manager(disabled=['fake']); print(pm.get_plugin('fake'))"
    )
    imported, out = _imports(installed_plugin, code)
    assert not imported and out.strip() == "None"


def test_a_module_can_be_loaded_by_import_name(installed_plugin):
    code = (
        "from livecall.plugins import create_plugin_manager;"
        "pm = create_plugin_manager(modules=['fake_livecall_plugin'], autoload=False);"
        "print(pm.get_plugin('fake_livecall_plugin') is not None)"
    )
    imported, out = _imports(installed_plugin, code)
    assert imported and out.strip() == "True"


def test_a_plugin_calling_sys_exit_in_a_hook_ends_nothing(plugin_manager, recorder):
    class Quitter:
        @livecall.hookimpl(tryfirst=True)
        def livecall_event(self, call, event):
            raise SystemExit(3)

    plugin_manager.register(Quitter(), name="quitter")
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        client.run()
    assert recorder.events() and isinstance(recorder.events()[-1], livecall.ConversationEnded)
    assert {f.plugin for f in recorder.of("error")} == {"quitter"}
    assert client.call.end_reason is livecall.EndReason.ENDED


# --- loading: a broken plugin, -p of an installed one, choosing, class hooks -----------

_SCRIPT = shutil.which("livecall", path=os.path.dirname(sys.executable))
LIVECALL = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "livecall"]
BROKEN_REASON = "ModuleNotFoundError: No module named 'livecall_missing_dependency'"


@pytest.fixture
def broken_plugin(tmp_path):
    """An installed distribution whose plugin module cannot be imported."""
    (tmp_path / "broken_livecall_plugin.py").write_text("import livecall_missing_dependency\n")
    dist = tmp_path / "broken_livecall_plugin-0.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-livecall-plugin\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[livecall]\nbroken = broken_livecall_plugin\n")
    return tmp_path


def autoloading_env(path=None, **extra):
    """Installed plugins load (the venv's bundled ones, and those on ``path``); no credentials."""
    drop = {DISABLE_AUTOLOAD_ENV, PLUGINS_ENV, "PHONIC_API_KEY", "PHONIC_SESSION_TOKEN", "HIYA_TOKEN"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if path is not None:
        env["PYTHONPATH"] = str(path)
    env.update(extra)
    return env


def livecall_command(*args, env):
    return subprocess.run([*LIVECALL, *args], capture_output=True, text=True, env=env, timeout=60)


def warnings_about(name, stderr):
    return [line for line in stderr.splitlines() if repr(name) in line]


@pytest.mark.parametrize("args", [["--help"], ["plugins"], ["plugins", "--json"]])
def test_a_plugin_that_fails_to_load_is_named_once_and_skipped(broken_plugin, args):
    result = livecall_command(*args, env=autoloading_env(broken_plugin))
    assert result.returncode == 0, result.stderr
    said = "plugin 'broken' failed to load and is skipped (-p no:broken hides this)"
    assert warnings_about("broken", result.stderr) == [f"livecall: warning: {said}: {BROKEN_REASON}"]
    if args == ["plugins"]:
        assert f"broken (broken-livecall-plugin 0.3)\n  failed to load: {BROKEN_REASON}\n" in result.stdout
        assert "csv (livecall-csv" in result.stdout, "the others load"
    if args == ["plugins", "--json"]:
        listed = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
        assert listed["broken"]["error"] == BROKEN_REASON and listed["broken"]["hooks"] == []
        assert listed["csv"]["error"] is None


def test_a_watch_runs_despite_a_plugin_that_fails_to_load(broken_plugin):
    with Simulator("phonic", "conversation") as sim:
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in sim.client_kwargs().items()]
        result = livecall_command("watch", "phonic", *flags, env=autoloading_env(broken_plugin))
    assert result.returncode == 0, result.stderr
    assert len(warnings_about("broken", result.stderr)) == 1
    assert "the call ended" in result.stdout


def test_a_program_using_the_client_runs_despite_a_plugin_that_fails_to_load(broken_plugin):
    code = textwrap.dedent(
        """
        import livecall
        from livecall.testing import Simulator

        with Simulator("phonic", "conversation") as sim:
            client = livecall.PhonicClient(**sim.client_kwargs())
            client.run()
        print(client.call.end_reason)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=autoloading_env(broken_plugin),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ended"
    assert warnings_about("broken", result.stderr) == [
        f"plugin 'broken' failed to load and is skipped (-p no:broken hides this): {BROKEN_REASON}"
    ]


def test_p_naming_an_installed_plugin_is_harmless():
    result = livecall_command("-p", "livecall_csv", "plugins", env=autoloading_env())
    assert result.returncode == 0, result.stderr
    assert "csv (livecall-csv" in result.stdout and "livecall_csv" not in result.stdout


def listed_names(stdout):
    return [line.split(" ")[0] for line in stdout.splitlines() if not line.startswith(" ")]


@pytest.mark.parametrize(
    "chosen, names",
    [
        ("csv", ["csv", "output"]),
        (" webhook , csv ", ["csv", "output", "webhook"]),
        ("output", ["output"]),  # a built-in: always there, and no warning
        ("", ["output"]),
    ],
)
def test_livecall_plugins_env_loads_only_the_installed_plugins_named(chosen, names):
    result = livecall_command("plugins", env=autoloading_env(**{PLUGINS_ENV: chosen}))
    assert result.returncode == 0, result.stderr
    assert listed_names(result.stdout) == names
    assert not result.stderr


def test_livecall_plugins_env_warns_of_a_name_not_installed():
    result = livecall_command("plugins", env=autoloading_env(**{PLUGINS_ENV: "csv,cvs"}))
    assert result.returncode == 0 and listed_names(result.stdout) == ["csv", "output"]
    said = "LIVECALL_PLUGINS names 'cvs', which is not an installed plugin (see: livecall plugins)"
    assert result.stderr.splitlines() == [f"livecall: warning: {said}"]


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "off"])
def test_autoload_is_not_disabled_by_a_false_value(installed_plugin, value):
    code = "from livecall.plugins import create_plugin_manager; create_plugin_manager()"
    imported, _ = _imports(installed_plugin, code, LIVECALL_DISABLE_PLUGIN_AUTOLOAD=value)
    assert imported


def test_livecall_plugins_lists_the_hooks_of_the_classes_plugins_register():
    result = livecall_command("plugins", env=autoloading_env(**{PLUGINS_ENV: "csv"}))
    assert result.returncode == 0, result.stderr
    assert (
        "csv (livecall-csv 0.1.0)\n"
        "  hooks: livecall_addoption, livecall_configure\n"
        "  CsvWriter hooks: livecall_call_end, livecall_call_start, livecall_event, livecall_transcript\n"
    ) in result.stdout


# --- a hook livecall does not have: warned of, marked, refused when strict -------------

MISSPELT = textwrap.dedent(
    """
    import livecall


    class Counter:
        '''Registered for the run by livecall_configure, with a misspelt hook of its own.'''

        @livecall.hookimpl
        def livecall_transcripts(self, call, transcript):
            pass

        @livecall.hookimpl(optionalhook=True)
        def livecall_from_a_later_version(self, call):
            pass

        def livecall_counted(self):
            '''A helper, not a hook implementation: never flagged.'''


    @livecall.hookimpl
    def livecall_configure(config):
        config.register(Counter())


    @livecall.hookimpl
    def livecall_call_ends(call):
        pass
    """
)
MODULE_WARNING = (
    "livecall: warning: plugin {name!r} implements livecall_call_ends, which is never called "
    "(unknown hook: did you mean livecall_call_end?)"
)


@pytest.fixture
def misspelt_plugin(tmp_path):
    """An installed distribution (entry point ``misspelt``) whose module misspells two hooks."""
    (tmp_path / "misspelt_livecall_plugin.py").write_text(MISSPELT)
    dist = tmp_path / "misspelt_livecall_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: misspelt-livecall-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[livecall]\nmisspelt = misspelt_livecall_plugin\n")
    return tmp_path


#: The plugin installed (loaded by its entry point), or given with -p while autoload is off.
HOW_LOADED = {
    "installed": ("misspelt", [], {PLUGINS_ENV: "misspelt"}),
    "-p": ("misspelt_livecall_plugin", ["-p", "misspelt_livecall_plugin"], {DISABLE_AUTOLOAD_ENV: "1"}),
}


@pytest.mark.parametrize("how", HOW_LOADED)
def test_a_misspelt_hook_is_warned_of_and_marked_by_livecall_plugins(misspelt_plugin, how):
    name, args, env = HOW_LOADED[how]
    result = livecall_command(*args, "plugins", env=autoloading_env(misspelt_plugin, **env))
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [MODULE_WARNING.format(name=name)]
    assert (
        "  hooks: livecall_call_ends (unknown hook: did you mean livecall_call_end?), livecall_configure\n"
        "  Counter hooks: livecall_from_a_later_version, "
        "livecall_transcripts (unknown hook: did you mean livecall_transcript?)\n"
    ) in result.stdout
    listed = livecall_command(*args, "plugins", "--json", env=autoloading_env(misspelt_plugin, **env))
    plugin = {plugin["name"]: plugin for plugin in json.loads(listed.stdout)}[name]
    assert plugin["unknown_hooks"] == {
        "livecall_call_ends": "livecall_call_end",
        "livecall_transcripts": "livecall_transcript",
    }


def test_a_misspelt_hook_of_a_plugin_registered_for_the_run_is_warned_of(misspelt_plugin):
    env = autoloading_env(misspelt_plugin, **{DISABLE_AUTOLOAD_ENV: "1"})
    with Simulator("phonic", "conversation") as sim:
        flags = [f"--{k.replace('_', '-')}={v}" for k, v in sim.client_kwargs().items()]
        result = livecall_command("-p", "misspelt_livecall_plugin", "watch", "phonic", *flags, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        MODULE_WARNING.format(name="misspelt_livecall_plugin"),
        f"livecall: warning: plugin 'Counter' {SAID}",
    ]


@pytest.mark.parametrize("how", HOW_LOADED)
def test_strict_plugins_refuse_a_misspelt_hook(misspelt_plugin, how):
    name, args, env = HOW_LOADED[how]
    env = autoloading_env(misspelt_plugin, LIVECALL_STRICT_PLUGINS="1", **env)
    result = livecall_command(*args, "plugins", env=env)
    assert result.returncode == livecall.ExitStatus.FAILURE
    assert result.stderr.splitlines() == [
        MODULE_WARNING.format(name=name).replace("warning", "error") + "; the plugin is refused"
    ]


class Misspelt:
    @livecall.hookimpl
    def livecall_transcripts(self, call, transcript):
        pass


SAID = (
    "implements livecall_transcripts, which is never called (unknown hook: did you mean livecall_transcript?)"
)


def test_a_misspelt_hook_is_refused_by_a_strict_manager_and_by_a_client(caplog):
    pm = create_plugin_manager(autoload=False, strict=True)
    refused = f"plugin 'misspelt' {SAID}; the plugin is refused"
    with pytest.raises(UnknownHookError, match=re.escape(refused)):
        pm.register(Misspelt(), name="misspelt")
    assert pm.get_plugin("misspelt") is None
    client = livecall.PhonicClient("conv_1", api_key="key-12345678")
    with pytest.raises(pluggy.PluginValidationError, match=re.escape(f"plugin 'Misspelt' {SAID}")):
        client.register(Misspelt())
    with caplog.at_level(logging.WARNING, logger="livecall.plugins"):
        create_plugin_manager(autoload=False).register(Misspelt())
    assert [record.getMessage() for record in caplog.records] == [f"plugin 'Misspelt' {SAID}"]
