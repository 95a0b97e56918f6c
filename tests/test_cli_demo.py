"""``livecall demo``: both providers' calls simulated and watched through the plugins."""

import signal

from cli_process import TIMEOUT, livecall

from livecall.testing import Simulator

#: Stands in for the CSV plugin: the demo sets a default for its --csv option.
FAKE_CSV = """
    import livecall

    rows = []

    @livecall.hookimpl
    def livecall_addoption(parser):
        parser.add_argument("--csv", metavar="PATH")

    @livecall.hookimpl
    def livecall_transcript(call, transcript):
        rows.append(f"{call.provider},{transcript.role}")

    @livecall.hookimpl
    def livecall_unconfigure(config):
        if config.options.csv:
            with open(config.options.csv, "w") as out:
                out.write("\\n".join(rows))
"""


def test_demo_watches_both_calls_through_the_plugins_and_exits_0(plugin_env, tmp_path):
    result = livecall(
        "-p",
        "fake_csv",
        "demo",
        "--pace",
        "0",
        cwd=tmp_path,
        env=plugin_env("fake_csv", FAKE_CSV),
        timeout=15,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    headers = [line for line in lines if line.startswith("== ")]
    assert [header.split()[1] for header in headers] == ["hiya", "hiya", "phonic", "phonic"]
    assert headers[1].endswith(": the call ended") and headers[3].endswith(": the call ended")
    joined = next(i for i, line in enumerate(lines) if line.endswith("--         joined the call"))
    assert "screening ended" in lines[joined - 1] and lines[joined + 1].split()[1] == "user"
    assert any(
        line.endswith("assistant  Great, you're booked for Tuesday at 10 am. See you then!") for line in lines
    )
    rows = (tmp_path / "livecall-demo.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["hiya"] * 8 + ["phonic"] * 6
    assert f"The CSV plugin wrote {tmp_path / 'livecall-demo.csv'}" in result.stderr


def test_a_signal_ends_the_demo_with_the_call_it_watches(running):
    process = running(["demo"])
    process.line("hiya")  # the first call is being watched
    process.process.send_signal(signal.SIGINT)
    assert process.wait(timeout=TIMEOUT) == 130
    narration = "".join(process.stderr)
    assert "A Hiya call" in narration and "A Phonic conversation" not in narration
    assert process.stdout[-1].endswith(": stopped watching\n")


def test_the_demo_csv_default_stays_out_of_watch(plugin_env, tmp_path):
    with Simulator("phonic", "conversation") as sim:
        result = livecall(
            "-p", "fake_csv", *sim.watch_args(), cwd=tmp_path, env=plugin_env("fake_csv", FAKE_CSV)
        )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "fake_csv.py"]
