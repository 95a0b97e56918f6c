"""Plugins in the ``livecall`` command: ``-p``, ``livecall plugins``, their hooks, options, failures
and commands, and the jsonl contract with every bundled plugin."""

import http.server
import json
import re
import signal
import textwrap
import threading
from pathlib import Path

import pytest
from cli_process import RECORDER, TIMEOUT, livecall

from livecall import PhonicClient
from livecall.plugins import create_plugin_manager
from livecall.testing import Simulator


def test_dash_p_loads_a_plugin_with_its_options_and_hooks(plugin_env, tmp_path):
    log_path = tmp_path / "hooks.log"
    env = plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path))
    with Simulator("phonic", "conversation") as sim:
        result = livecall("-p", "recorder_plugin", *sim.watch_args("--label", "nightly"), env=env)
    assert result.returncode == 0, result.stderr
    logged = log_path.read_text().splitlines()
    assert logged[0] == "configure nightly" and logged[-1] == "unconfigure"
    assert logged[1:-1].count("event transcript") == 6
    assert logged[-2] == "event conversation_ended"
    assert "== phonic call" in result.stdout, "the built-in output still prints"


def test_plugins_lists_built_in_and_loaded_plugins(plugin_env, tmp_path):
    env = plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(tmp_path / "unused.log"))
    result = livecall("-p", "recorder_plugin", "plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert plugins["recorder_plugin"] == {
        "name": "recorder_plugin",
        "version": None,
        "distribution": None,
        "hooks": ["livecall_addoption", "livecall_configure", "livecall_event", "livecall_unconfigure"],
        "classes": {},
        "unknown_hooks": {},
        "error": None,
    }
    assert plugins["output"]["hooks"] == ["livecall_addoption", "livecall_configure"]
    text = livecall("-p", "recorder_plugin", "plugins", env=env).stdout
    assert "output (built-in)\n  hooks: livecall_addoption," in text
    assert "recorder_plugin (module)\n  hooks: livecall_addoption, livecall_configure, livecall_event" in text


def test_no_output_disables_the_built_in_printer():
    with Simulator("phonic", "conversation") as sim:
        result = livecall("-p", "no:output", *sim.watch_args())
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    listed = json.loads(livecall("-p", "no:output", "plugins", "--json").stdout)
    assert "output" not in {plugin["name"] for plugin in listed}


def test_the_output_plugin_prints_nothing_for_a_library_client(capsys):
    pm = create_plugin_manager(autoload=False)
    assert pm.get_plugin("output") is not None
    with Simulator("phonic", "conversation") as sim:
        PhonicClient(**sim.client_kwargs(), plugin_manager=pm).run()
    assert capsys.readouterr() == ("", "")


def test_plugin_failures_are_isolated_and_set_the_status(plugin_env, tmp_path):
    log_path = tmp_path / "hooks.log"
    env = plugin_env(
        "failing_plugin",
        """
        import livecall

        @livecall.hookimpl
        def livecall_event(call, event):
            raise RuntimeError("event hook broke")

        @livecall.hookimpl
        def livecall_unconfigure(config):
            config.fail(5, "2 rows were not delivered")
            raise RuntimeError("flush broke")
        """,
    )
    env.update(plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path)))
    with Simulator("phonic", "conversation") as sim:
        result = livecall("-p", "recorder_plugin", "-p", "failing_plugin", *sim.watch_args(), env=env)
    assert result.returncode == 5, "the highest status a plugin reported"
    assert (
        "livecall: error: plugin 'failing_plugin' failed in livecall_event: RuntimeError: event hook broke"
        in (result.stderr)
    )
    assert "livecall: error: 2 rows were not delivered" in result.stderr
    assert "livecall: error: plugin 'failing_plugin' failed in livecall_unconfigure" in result.stderr
    assert "Traceback" not in result.stderr
    assert log_path.read_text().splitlines()[-1] == "unconfigure", "the other plugin still flushed"
    assert result.stdout.splitlines()[-1].endswith(": the call ended")


def test_a_plugin_refusing_its_configuration_stops_the_run(plugin_env, tmp_path):
    log_path = tmp_path / "hooks.log"
    env = plugin_env(
        "strict_plugin",
        """
        import livecall

        @livecall.hookimpl
        def livecall_configure(config):
            raise livecall.ConfigurationError("--target is required")
        """,
    )
    env.update(plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path)))
    with Simulator("phonic", "conversation") as sim:
        result = livecall("-p", "recorder_plugin", "-p", "strict_plugin", *sim.watch_args(), env=env)
        connections = len(sim.connections)
    assert result.returncode == 2
    assert result.stderr == (
        "livecall: error: plugin 'strict_plugin' failed in livecall_configure: "
        "ConfigurationError: --target is required\n"
    )
    assert connections == 0, "nothing is watched"
    assert log_path.read_text().splitlines() == ["configure none", "unconfigure"]


# --- commands of plugins --------------------------------------------------------------


def test_plugins_add_commands(plugin_env):
    env = plugin_env(
        "hello_plugin",
        """
        import livecall

        def hello(config):
            config.stdout.write(f"hello {config.options.name}\\n")
            return 7

        @livecall.hookimpl
        def livecall_register_commands(subparsers):
            parser = subparsers.add_parser("hello")
            parser.add_argument("name")
            parser.set_defaults(func=hello)
        """,
    )
    result = livecall("-p", "hello_plugin", "hello", "world", env=env)
    assert (result.returncode, result.stdout) == (7, "hello world\n")


def test_ctrl_c_stops_a_plugins_command(running, plugin_env):
    env = plugin_env(
        "blocking_plugin",
        """
        import sys
        import livecall

        def block(config):
            print("blocking", flush=True)
            sys.stdin.readline()
            return 0

        @livecall.hookimpl
        def livecall_register_commands(subparsers):
            subparsers.add_parser("block").set_defaults(func=block)
        """,
    )
    process = running(["-p", "blocking_plugin", "block"], env)
    process.line("blocking")
    process.process.send_signal(signal.SIGINT)
    assert process.wait(timeout=TIMEOUT) == 130


# --- the jsonl contract with every plugin ---------------------------------------------


def tutorial_module(name: str) -> str:
    """The module a docs page builds, from its code block captioned with the file name."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "writing-plugins.rst").read_text()
    match = re.search(rf"\.\. code-block:: python\n +:caption: {name}\n\n((?: {{4}}.*\n|\n)+)", page)
    assert match, f"no code block captioned {name}"
    return textwrap.dedent(match.group(1))


class _Hooks(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    thread.join()
    server.server_close()


def test_jsonl_stays_json_with_every_bundled_plugin_and_the_tutorials(plugin_env, tmp_path, webhook_url):
    pytest.importorskip("livecall_csv", reason="the bundled plugins are not installed")
    env = plugin_env("livecall_keywords", tutorial_module("livecall_keywords.py"))
    plugins = ["livecall_keywords", "livecall_csv", "livecall_logging", "livecall_webhook"]
    options = ["--keyword", "tuesday", "--csv", str(tmp_path / "calls.csv"), "--log-level", "INFO"]
    options += ["--webhook-url", webhook_url]
    loading = [word for plugin in plugins for word in ("-p", plugin)]
    with Simulator("phonic", "conversation") as sim:
        result = livecall(*loading, *sim.watch_args("--format", "jsonl", *options), env=env)
        text = livecall(*loading, *sim.watch_args("--keyword", "tuesday"), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["event"] for line in lines][-1] == "conversation_ended", "every line is JSON"
    assert "** lines mentioning tuesday: 3" in result.stderr, "the tutorial's plugin wrote to stderr"
    assert (tmp_path / "calls.csv").read_text().count("\n") == 1 + 6, "the CSV plugin ran"
    assert text.stdout.splitlines()[-2:] == [
        "== phonic call conv_simulated-0001: the call ended",
        "** lines mentioning tuesday: 3",
    ], "with the transcript, after the printer's last line"
