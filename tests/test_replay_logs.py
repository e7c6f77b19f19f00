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


KILL = ("Kill 'com.example.news' (9102), uid 10123, oom_score_adj 925 to free 48712kB rss, "
        "61200kB swap; reason: low watermark is breached")
OOM = ("Out of memory: Killed process 1234 (chrome) total-vm:123456kB, anon-rss:65432kB, "
       "file-rss:1234kB, shmem-rss:0kB, UID:1000 pgtables:512kB oom_score_adj:300")
# 38 values (Android 15): rss 48712 kB (5th), MemFree 1000 (7th), SwapFree 1000000 (14th),
# TaskSwapSize 61200 (30th)
KILLINFO = ("[9102,10123,925,900,48712,2,1000,2000,300,40,50,0,4000000,1000000,100,200,300,400,"
            "50,60,70,80,0,0,0,12,34,5,0,61200,0,0,0,0.5,0.1,0.2,0.0,1.5]")


def kills_of(text: str) -> list[tuple]:
    return [(k.name, k.rss_kb, k.swap_kb, k.t_ms) for k in parse_trace(text, "t.log").kills]


def test_logcat_long_format_keeps_its_times() -> None:
    text = (f"[ 03-14 10:02:11.417   612:  612 I/lowmemorykiller ]\n{KILL}\n\n"
            f"[ 03-14 10:02:11.517   612:  612 I/lowmemorykiller ]\n{KILL.replace('9102', '9103')}\n")
    assert kills_of(text) == [("com.example.news", 48712, 61200, 0.0),
                              ("com.example.news", 48712, 61200, 100.0)]


def test_logcat_epoch_uid_year_and_monotonic_stamps() -> None:
    for prefix in ("1710410531.417   612   612 I lowmemorykiller: ",
                   "03-14 10:02:11.417  lmkd   612   612 I lowmemorykiller: ",
                   "2024-03-14 10:02:11.417   612   612 I lowmemorykiller: ",
                   "    12345.678   612   612 I lowmemorykiller: "):
        assert kills_of(prefix + KILL) == [("com.example.news", 48712, 61200, 0.0)], prefix


def test_a_bugreport_s_lmkd_lines() -> None:
    text = ("== dumpstate: 2024-03-14 10:05:00\n"
            "------ SYSTEM LOG (logcat -v threadtime -v printable -v uid -d *:v) ------\n"
            "--------- beginning of main\n"
            f"03-14 10:02:11.417  1000   612   612 I lowmemorykiller: {KILL}\n"
            "03-14 10:02:11.420  1000  1234  1250 I ActivityManager: Process x died\n"
            f"03-14 10:02:11.517  1000   612   612 I lowmemorykiller: {KILL}\n")
    assert [k[3] for k in kills_of(text)] == [0.0, 100.0]


def test_journal_short_iso_and_short_monotonic_and_memcg() -> None:
    assert kills_of(f"2024-03-14T10:02:11+0000 myhost kernel: {OOM}\n"
                    f"2024-03-14T10:02:11.25+00:00 myhost kernel: {OOM}\n") == [
        ("chrome", 65432, 65432, 0.0), ("chrome", 65432, 65432, 250.0)]
    assert kills_of(f"[12345.678901] myhost kernel: {OOM}\n"
                    f"[12345.778901] myhost kernel: {OOM}\n")[1][3] == 100.0
    memcg = OOM.replace("Out of memory", "Memory cgroup out of memory")
    trace = parse_trace(f"[12345.678901] {memcg}\n", "m.log")
    assert trace.kills[0].reason == "Memory cgroup out of memory"


def test_killinfo_events_alone_and_beside_kill_lines() -> None:
    alone = parse_trace(f"03-14 10:02:11.417   612   612 I killinfo: {KILLINFO}\n", "e.log")
    k = alone.kills[0]
    assert (k.pid, k.rss_kb, k.swap_kb, k.mem_free_kb, k.swap_free_kb) == (
        9102, 48712, 61200, 1000, 1000000)
    both = parse_trace(f"03-14 10:02:11.417   612   612 I lowmemorykiller: {KILL}\n"
                       f"03-14 10:02:11.418   612   612 I killinfo: {KILLINFO}\n", "b.log")
    assert len(both.kills) == 1 and both.kills[0].name == "com.example.news"
    assert both.kills[0].swap_free_kb == 1000000
    short = KILLINFO[:KILLINFO.index(",12,34")] + "]"          # 25 values: no TaskSwapSize
    assert parse_trace(f"I/killinfo(  612): {short}\n", "s.log").kills[0].swap_kb == 0
