"""`emul replay` on real-looking logs: cut-off kill lines skipped and named (issue 18), trace.json
for a replay, and `emul report` redrawing replay.png."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image

from conftest import ROOT, run_emul
from emul.replay.traces import parse_trace
from test_replay import base_scenario

BURST = (ROOT / "scenarios/traces/burst.log").read_text()


def cut_one_kill_line(text: str) -> tuple[str, int]:
    """The log with its third kill line cut off mid-line (as when logcat's buffer wraps); the
    line's number."""
    lines = text.split("\n")
    kills = [i for i, ln in enumerate(lines) if "Kill '" in ln or "Reclaim '" in ln]
    i = kills[2]
    lines[i] = lines[i][: lines[i].index(" to free") + 12]
    return "\n".join(lines), i + 1


def test_a_cut_off_kill_line_is_skipped_and_named() -> None:
    text, n = cut_one_kill_line(BURST)
    whole = parse_trace(BURST, "burst.log", strict=False)
    trace = parse_trace(text, "cut.log", strict=False)
    assert len(trace.kills) == len(whole.kills) - 1
    assert [m.line for m in trace.malformed] == [n]
    assert "malformed kill line" in trace.malformed[0].reason


def test_a_trace_whose_every_kill_line_is_cut_is_still_refused() -> None:
    import pytest

    from emul.errors import InputError
    text = "\n".join(ln[: ln.index(" to free") + 12] if "Kill '" in ln else ln
                     for ln in BURST.split("\n"))
    with pytest.raises(InputError, match="every kill line is malformed"):
        parse_trace(text, "all-cut.log", strict=False)


def test_replay_goes_on_without_the_cut_line_and_strict_refuses(tmp_path: Path,
                                                               no_leftovers) -> None:
    text, n = cut_one_kill_line(BURST)
    log = tmp_path / "cut.log"
    log.write_text(text)
    base = str(base_scenario(tmp_path))
    r = run_emul("replay", str(log), "--scenario", base, "--strategies", "sync",
                 "--warmup", "0", "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert f"line {n}:" in r.stdout and "skipped 1 malformed kill line" in r.stdout
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [m["line"] for m in doc["trace"]["malformed"]] == [n]
    s = run_emul("replay", str(log), "--scenario", base, "--strategies", "sync", "--strict",
                 "-o", str(tmp_path / "strict"))
    assert s.returncode == 2 and f"line {n}" in s.stderr and "Traceback" not in s.stderr
    assert not (tmp_path / "strict" / "results.json").exists()


def test_a_replay_writes_trace_json_and_report_redraws_replay_png(tmp_path: Path,
                                                                  no_leftovers) -> None:
    out = tmp_path / "out"
    r = run_emul("replay", str(ROOT / "scenarios/traces/burst.log"), "--scenario",
                 str(base_scenario(tmp_path)), "--strategies", "sync,bitmap", "--warmup", "0",
                 "-o", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    events = json.loads((out / "trace.json").read_text())["traceEvents"]
    anon = [e for e in events if e["ph"] == "X" and e["name"].endswith(": anon freed")]
    swap = [e for e in events if e["ph"] == "b" and e["name"].endswith(": swap freed")]
    kills = doc["trace"]["kills"] * len(doc["repeats"])
    assert len(anon) == kills and len(swap) == kills
    for row in doc["replay_summary"]:
        assert row["anon_freed_ms_p50"] <= row["anon_freed_ms_p90"] <= row["anon_freed_ms_p99"]
        assert "fallback" in row and "lazy" in row
    (out / "replay.png").unlink()
    rep = run_emul("report", str(out))
    assert rep.returncode == 0, rep.stderr
    img = matplotlib.image.imread(out / "replay.png")
    assert img.shape[0] > 500 and img.shape[1] > 800
    assert not (out / "memory.png").exists(), "a replay's report draws the run plots"
    assert "kill → anon freed" in rep.stdout and "lazy / fallback" in rep.stdout
