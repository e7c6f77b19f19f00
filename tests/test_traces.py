"""Kill traces: every accepted log shape parses to the right kills; everything else is one
clear InputError naming the line; no input, however broken, raises anything else or hangs."""
from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emul.replay import traces
from emul.errors import EXIT_USAGE, InputError
from emul.replay.traces import MAX_TRACE_BYTES, Kill, Trace, parse_trace, read_trace

ROOT = Path(__file__).resolve().parent.parent
TRACES = ROOT / "scenarios" / "traces"
W = "t.log"

# Real lines (docs/workloads.md): crdroidandroid/issue_tracker#809 and wang-bin/mdk-sdk#304.
REAL_LMKD = ("10-24 14:24:06.590   710   710 I lowmemorykiller: Kill 'com.android.vending' (18624), "
             "uid 10453, oom_score_adj 905 to free 183244kB rss, 34860kB swap; "
             "reason: device is not responding")
REAL_OOM = ("Out of memory: Killed process 340 (systemd) total-vm:17324kB, anon-rss:1920kB, "
            "file-rss:256kB, shmem-rss:0kB, UID:0 pgtables:76kB oom_score_adj:100")
MSG = ("Kill 'com.example.gallery' (8841), uid 10187, oom_score_adj 915 to free 212340kB rss, "
       "96112kB swap; reason: low watermark is breached and swap is low (98304kB < 419430kB)")


def one(text: str | bytes, **kw) -> Kill:
    trace = parse_trace(text, W, **kw)
    assert len(trace.kills) == 1, trace
    return trace.kills[0]


def error(text: str | bytes, **kw) -> str:
    with pytest.raises(InputError) as e:
        parse_trace(text, W, **kw)
    assert e.value.exit_code == EXIT_USAGE
    return str(e.value)


# ------------------------------------------------------------------------------------------
# lmkd lines


def test_real_lmkd_line() -> None:
    trace = parse_trace(REAL_LMKD, W)
    assert trace == Trace(format="lmkd", skipped=0, where=W, kills=(Kill(
        t_ms=0.0, name="com.android.vending", rss_kb=183244, swap_kb=34860, pid=18624,
        oom_score_adj=905, reason="device is not responding", line=1),))


@pytest.mark.parametrize("line", [
    f"03-14 10:02:11.417   612   612 I lowmemorykiller: {MSG}",              # threadtime
    f"03-14 10:02:11.417  1000   612   612 I lowmemorykiller: {MSG}",        # -v uid
    f"2024-03-14 10:02:11.417   612   612 I lowmemorykiller: {MSG}",         # -v year
    f"03-14 10:02:11.417123   612   612 I lowmemorykiller: {MSG}",           # -v usec
    f"03-14 10:02:11.417 +0100   612   612 I lowmemorykiller: {MSG}",        # -v zone
    f"  5123.417   612   612 I lowmemorykiller: {MSG}",                      # -v monotonic
    f"03-14 10:02:11.417 I/lowmemorykiller(  612): {MSG}",                   # time
    f"03-14 10:02:11.417  I/lowmemorykiller: {MSG}",                         # time, no pid
    f"I/lowmemorykiller(  612): {MSG}",                                      # brief
    f"I/lowmemorykiller: {MSG}",                                             # tag
    f"lowmemorykiller: {MSG}",                                               # bare tag
    MSG,                                                                     # no prefix
    f"{MSG}\r",                                                              # CRLF file
    f"\x1b[38;5;40m03-14 10:02:11.417   612   612 I lowmemorykiller: {MSG}\x1b[0m",  # -v color
    f"[ 5123.417001] lowmemorykiller: {MSG}",                                # via dmesg
])
def test_lmkd_prefixes(line: str) -> None:
    k = one(line)
    assert (k.name, k.pid, k.oom_score_adj, k.rss_kb, k.swap_kb) == (
        "com.example.gallery", 8841, 915, 212340, 96112)
    assert k.reason == "low watermark is breached and swap is low (98304kB < 419430kB)"
    assert (k.t_ms, k.line) == (0.0, 1)


def test_no_reason_variant_lowercase_kb() -> None:
    k = one("03-14 10:02:11.417   612   612 I lowmemorykiller: Kill 'com.example.news:sync' "
            "(9102), uid 10203, oom_score_adj 925 to free 48712kB rss, 61200kb swap")
    assert (k.name, k.rss_kb, k.swap_kb, k.reason) == ("com.example.news:sync", 48712, 61200, None)


def test_android11_form_has_no_swap() -> None:
    k = one("I/lowmemorykiller(  612): Kill 'com.example.maps' (4410), uid 10150, oom_adj 900 "
            "to free 325120kB; reason: min watermark is breached even after kill")
    assert (k.rss_kb, k.swap_kb, k.oom_score_adj) == (325120, 0, 900)
    assert k.reason == "min watermark is breached even after kill"
    k = one("Kill 'com.example.maps' (4410), uid 10150, oom_adj 900 to free 325120kB")   # Android 10
    assert (k.rss_kb, k.swap_kb, k.reason) == (325120, 0, None)


def test_samsung_reclaim_variant() -> None:
    text = "\n".join(
        f"01-09 15:11:13.{ms}  1058  1058 I lmkd    : Reclaim 'com.example.app{i}' (2{i}001), "
        f"uid 10{i}11, oom_score_adj 97{i}, state 19 to free 18{i}00kB rss, 5{i}000kB swap; "
        "reason: min2x watermark is breached and swap is low (5835264kB < 838860kB)"
        for i, ms in enumerate(["739", "762", "786", "807"]))
    trace = parse_trace(text, W)
    assert [k.t_ms for k in trace.kills] == [0.0, 23.0, 47.0, 68.0]
    assert [k.oom_score_adj for k in trace.kills] == [970, 971, 972, 973]
    assert trace.kills[2].swap_kb == 52000 and trace.kills[2].rss_kb == 18200
    k = one("I/lmkd: Reclaim 'x.y' (20550), uid 11227, oom_score_adj 905, state 19 to free "
            "162172kB rss, 31032kB swap")
    assert (k.name, k.swap_kb) == ("x.y", 31032)


def test_names_may_hold_quotes_and_junk() -> None:
    assert one("Kill 'it's (odd)' (12), uid 1, oom_score_adj 900 to free 4kB rss, 0kB swap").name \
        == "it's (odd)"
    assert one(b"Kill 'bad\xffname' (12), uid 1, oom_score_adj 900 to free 4kB rss").name \
        == "bad\ufffdname"


def test_other_tags_and_non_kill_lmkd_lines_are_skipped() -> None:
    text = "\n".join([
        "--------- beginning of main",
        "03-14 10:02:11.400  1438  1631 I ActivityManager: Kill 'com.example.x' (1), not lmkd",
        "03-14 10:02:11.426   612   614 I lowmemorykiller: Process 8841 was reaped in 9ms",
        # lmkd's killinfo event of the same kill (pid 18624): merged into it (issue 18)
        "03-14 10:02:11.427   612   614 I killinfo: [18624,10187,905,900,212340,2,1024]",
        "# a comment quoting: lowmemorykiller: Kill 'x' (1), broken",
        "",
        "   ",
        REAL_LMKD,
        "Mar 14 10:02:11 host myapp[12]: Out of memory: Killed process 9 (x) is not ours",
    ])
    trace = parse_trace(text, W)
    assert len(trace.kills) == 1 and trace.kills[0].line == 8
    assert trace.kills[0].mem_free_kb == 1024 and trace.kills[0].swap_free_kb is None
    assert trace.skipped == 5


# ------------------------------------------------------------------------------------------
# Kernel OOM lines


@pytest.mark.parametrize("line,reason", [
    (f"[12345.678901] {REAL_OOM}", "Out of memory"),
    (f"<3>[12345.678901] {REAL_OOM}", "Out of memory"),
    (f"[12345.678901][  T340] {REAL_OOM}", "Out of memory"),
    (f"[12345.678901] [    C3] {REAL_OOM}", "Out of memory"),
    (REAL_OOM, "Out of memory"),
    (f"Mar 14 10:02:11 host kernel: {REAL_OOM}", "Out of memory"),
    (f"Mar 14 10:02:11 host kernel: [12345.678901] {REAL_OOM}", "Out of memory"),
    (f"Mar 14 10:02:11.123456 host kernel: {REAL_OOM}", "Out of memory"),
    (f"2024-03-14T10:02:11.123456+0000 host kernel: {REAL_OOM}", "Out of memory"),
    (f"[Thu Mar 14 10:02:11 2024] {REAL_OOM}", "Out of memory"),
    (f"03-14 10:02:11.417     0     0 I kernel  : {REAL_OOM}", "Out of memory"),
    ("03-14 10:02:11.417     0     0 E Out of memory: " + REAL_OOM.split(": ", 1)[1],
     "Out of memory"),
    ("Memory cgroup out of memory: " + REAL_OOM.split(": ", 1)[1], "Memory cgroup out of memory"),
    ("Out of memory (oom_kill_allocating_task): " + REAL_OOM.split(": ", 1)[1],
     "Out of memory (oom_kill_allocating_task)"),
])
def test_oom_prefixes(line: str, reason: str) -> None:
    k = one(line)
    assert (k.name, k.pid, k.rss_kb, k.swap_kb, k.oom_score_adj, k.reason) == (
        "systemd", 340, 1920, 1920, 100, reason)


def test_oom_older_kernels() -> None:
    k = one("[  99.1] Killed process 1234 (mprime) total-vm:6000kB, anon-rss:4000kB, "
            "file-rss:100kB, shmem-rss:8kB")                                   # 4.x
    assert (k.pid, k.rss_kb, k.oom_score_adj, k.reason) == (1234, 4000, None, None)
    k = one("Killed process 12 (a b) total-vm:6000kB, anon-rss:3000kB, file-rss:100kB")   # 3.x
    assert (k.name, k.rss_kb) == ("a b", 3000)


def test_oom_rss_is_anon_only_and_swap_follows_the_ratio() -> None:
    line = ("Out of memory: Killed process 7 (x) total-vm:9kB, anon-rss:1001kB, file-rss:500kB, "
            "shmem-rss:700kB, UID:0 pgtables:4kB oom_score_adj:-17")
    assert (one(line).rss_kb, one(line).swap_kb) == (1001, 1001)
    assert one(line, oom_swap_ratio=0).swap_kb == 0
    assert one(line, oom_swap_ratio=0.5).swap_kb == round(1001 * 0.5)
    assert one(line, oom_swap_ratio=2.5).swap_kb == 2502
    assert one(line).oom_score_adj == -17
    # The ratio applies to OOM kills only; lmkd lines keep their own swap.
    trace = parse_trace(f"{line}\n{MSG}", W, oom_swap_ratio=0.0)
    assert trace.format == "lmkd" and [k.swap_kb for k in trace.kills] == [0, 96112]


@pytest.mark.parametrize("ratio", [-1, float("nan"), float("inf"), "1", True, None])
def test_bad_oom_swap_ratio(ratio: object) -> None:
    assert "oom_swap_ratio" in error(REAL_OOM, oom_swap_ratio=ratio)


def test_oom_ratio_past_a_tebibyte() -> None:
    line = REAL_OOM.replace("anon-rss:1920kB", "anon-rss:1073741824kB")
    assert one(line).swap_kb == 1 << 30
    assert "line 1" in error(line, oom_swap_ratio=1.5)


def test_oom_neighbour_lines_are_skipped() -> None:
    trace = read_trace(TRACES / "oom.log")
    assert trace.format == "oom" and len(trace.kills) == 4
    assert [k.name for k in trace.kills] == ["chromium", "node", "python3", "java"]
    assert trace.kills[2].reason == "Memory cgroup out of memory"
    assert [k.t_ms for k in trace.kills] == pytest.approx([0, 410.573, 906.044, 1502.113])


# ------------------------------------------------------------------------------------------
# Times


def lmkd_at(prefix: str, n: int = 1) -> str:
    return f"{prefix} I lowmemorykiller: Kill 'p{n}' ({n}), uid 1, oom_score_adj 900 to free 4kB rss"


def times(*lines: str) -> list[float]:
    return [k.t_ms for k in parse_trace("\n".join(lines), W).kills]


def test_times_relative_to_first_kill() -> None:
    assert times(lmkd_at("03-14 10:02:11.417 1 1"), "noise", lmkd_at("03-14 10:02:11.439 1 1"),
                 lmkd_at("03-14 10:02:12.000 1 1")) == [0.0, 22.0, 583.0]


def test_midnight_and_new_year() -> None:
    assert times(lmkd_at("03-14 23:59:59.990 1 1"), lmkd_at("03-15 00:00:00.010 1 1")) == [0, 20]
    assert times(lmkd_at("12-31 23:59:59.990 1 1"), lmkd_at("01-01 00:00:00.010 1 1"),
                 lmkd_at("01-01 00:00:01.010 1 1")) == [0, 20, 1020]
    assert times(lmkd_at("2023-12-31 23:59:59.990 1 1"),
                 lmkd_at("2024-01-01 00:00:00.010 1 1")) == [0, 20]
    assert times(lmkd_at("02-28 23:59:59.000 1 1"), lmkd_at("02-29 00:00:00.000 1 1")) == [0, 1000]


def test_times_never_go_backwards() -> None:
    # A clock step back (or buffers merged out of order) is back-to-back, in file order.
    assert times(lmkd_at("03-14 10:00:00.500 1 1"), lmkd_at("03-14 09:00:00.000 1 1"),
                 lmkd_at("03-14 10:00:00.600 1 1")) == [0, 0, 100]
    assert times(f"[ 100.5] {REAL_OOM}", f"[ 3.0] {REAL_OOM}") == [0, 0]   # dmesg after a reboot


def test_untimed_kills_are_back_to_back() -> None:
    brief = "I/lowmemorykiller(  612): " + MSG
    assert times(brief, lmkd_at("03-14 10:00:00.500 1 1"), brief, lmkd_at("03-14 10:00:00.530 1 1"),
                 MSG) == [0, 0, 0, 30, 30]
    assert times(brief, MSG, brief) == [0, 0, 0]


def test_clock_found_on_most_kill_lines_wins() -> None:
    # Journal lines carry second-resolution syslog time and the dmesg stamp: the stamp wins.
    assert times(f"Mar 14 10:02:11 h kernel: [ 10.250] {REAL_OOM}",
                 f"Mar 14 10:02:11 h kernel: [ 10.750] {REAL_OOM}") == [0, 500]
    assert times(f"Mar 14 10:02:11 h kernel: {REAL_OOM}",
                 f"Mar 14 10:02:13 h kernel: {REAL_OOM}") == [0, 2000]


# ------------------------------------------------------------------------------------------
# Refused log input


# Cut points where the rest is still a whole line (80, 84, 98, 109+) are left out.
@pytest.mark.parametrize("cut", [6, 14, 22, 30, 40, 52, 66, 78, 90, 95, 99, 105])
def test_truncated_kill_line_names_its_line(cut: int) -> None:
    text = f"noise\n{REAL_LMKD}\n" + "03-14 10:02:11.417   612   612 I lowmemorykiller: " + MSG[:cut]
    msg = error(text)
    assert msg.startswith(f"{W}: line 3: malformed kill line: expected ")


@pytest.mark.parametrize("cut", [29, 33, 45, 60, 75, 100, 125, 140])
def test_truncated_oom_line(cut: int) -> None:
    assert error("ok\n[1.0] " + REAL_OOM[:cut]).startswith(f"{W}: line 2: ")


@pytest.mark.parametrize("bad,expect", [
    ("to free 2123400000000kB rss", "the rss in 0..1073741824 kB (1 TiB)"),
    ("to free -212340kB rss", "the rss in 0..1073741824 kB"),
    ("to free 21x340kB rss", "expected ' to free RSSkB rss'"),
    ("to free 99999999999999999999999999kB rss", "expected ' to free RSSkB rss'"),
    ("to free 1073741825kB rss", "1 TiB"),
])
def test_absurd_lmkd_numbers(bad: str, expect: str) -> None:
    assert one(MSG.replace("to free 212340kB rss", "to free 1073741824kB rss")).rss_kb == 1 << 30
    assert expect in error(MSG.replace("to free 212340kB rss", bad))


@pytest.mark.parametrize("old,new,expect", [
    ("96112kB swap", "-96112kB swap", "the swap in 0..1073741824 kB"),
    ("96112kB swap", "1099511627776kB swap", "the swap in"),
    ("(8841)", "(99999999)", "the pid in 0..4194304"),
    ("(8841)", "(8x41)", "'NAME' (PID) after the verb, PID a whole number"),
    ("oom_score_adj 915", "oom_score_adj 1001", "oom_score_adj in -1000..1000"),
    ("oom_score_adj 915", "oom_score_adj", "oom_score_adj ADJ"),
    ("96112kB swap; reason", "96112kB swap trailing; reason", "or the end of the line"),
    ("'com.example.gallery' (", "'com.example.gallery (", "'NAME' (PID)"),
    ("'com.example.gallery'", "''", "'NAME' (PID)"),
])
def test_malformed_lmkd_fields(old: str, new: str, expect: str) -> None:
    assert expect in error(MSG.replace(old, new, 1))


def test_oom_malformed_fields() -> None:
    assert "the pid" in error(REAL_OOM.replace("process 340", "process 9999999"))
    assert "anon-rss in 0..1073741824 kB" in error(REAL_OOM.replace("anon-rss:1920", "anon-rss:-1"))
    assert "oom_score_adj in" in error(REAL_OOM.replace("oom_score_adj:100", "oom_score_adj:5000"))
    assert "total-vm" in error("Out of Memory: Killed process 340 (systemd).")   # 2.6: no sizes


def test_replacement_char_in_a_number_is_malformed() -> None:
    data = ("03-14 10:02:11.417   612   612 I lowmemorykiller: " + MSG).encode()
    data = data.replace(b"212340kB", b"212\xff40kB")
    assert "line 1: malformed kill line" in error(data)


def test_binary_junk_elsewhere_is_fine() -> None:
    data = b"\x00\xff\xfe garbage \x80\x81\n\xc3\x28\n" + REAL_LMKD.encode() + b"\n\xff\xff\n"
    trace = parse_trace(data, W)
    assert len(trace.kills) == 1 and trace.kills[0].line == 3 and trace.skipped == 3


def test_bad_timestamp_on_a_kill_line() -> None:
    assert "month 1..12" in error(lmkd_at("13-14 10:02:11.417 1 1"))
    assert "real date" in error(lmkd_at("02-30 10:02:11.417 1 1"))
    assert "real date" in error(lmkd_at("2023-02-29 10:02:11.417 1 1"))
    assert "real date" in error(lmkd_at("03-14 25:02:11.417 1 1"))


def test_unrecognised_prefix_on_a_kill_line() -> None:
    assert "does not recognise" in error("> 10:02 lowmemorykiller: " + MSG)
    assert "does not recognise" in error("<kern.err> oops: Out of memory: Killed process 3 (x)")
    assert one("@@ kern.err " + REAL_OOM).reason == "Out of memory"     # no colon: still a kill


@pytest.mark.parametrize("text", ["", "\n\n  \n", "\ufeff", b"", b"\xef\xbb\xbf"])
def test_empty(text: str | bytes) -> None:
    assert "no kill lines found; skipped 0 unrelated lines; expected lmkd, kernel OOM, CSV or " \
           "JSON Lines" in error(text)


def test_only_unrelated_lines() -> None:
    assert error("hello\n# comment\n\n[ 1.0] oom_reaper: reaped process 1 (x)\n") == (
        f"{W}: no kill lines found; skipped 3 unrelated lines; "
        "expected lmkd, kernel OOM, CSV or JSON Lines")


def test_garbage() -> None:
    assert "no kill lines found" in error("\x00" * 1000 + "Kill" + "'" * 50)
    assert "no kill lines found" in error(bytes(range(256)) * 40)


def test_size_cap(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    with open(big, "wb") as f:
        f.truncate(MAX_TRACE_BYTES + 1)                     # sparse: costs no disk
    with pytest.raises(InputError, match="larger than 64 MiB"):
        read_trace(big)
    ok = tmp_path / "ok.log"
    ok.write_text(REAL_LMKD)
    assert read_trace(ok).where == str(ok)


def test_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the trace"):
        read_trace(tmp_path / "missing.log")
    with pytest.raises(InputError, match="cannot read the trace"):
        read_trace(tmp_path)


@pytest.mark.parametrize("line", [
    "Kill '" + "a" * 200_000,
    "I/lowmemorykiller(" + " " * 200_000 + "): Kill 'x'",
    "03-14 10:02:11.417 " + "1 " * 100_000 + "I lowmemorykiller: Kill 'x'",
    MSG + " " * 200_000,
    MSG.replace("reason: ", "reason: " + " \t" * 100_000 + "x"),
    "Out of memory: Killed process 1 (" + "x" * 200_000,
    "Mar 14 10:02:11 " + "h" * 200_000 + " kernel: Killed process 1",
    "lowmemorykiller" + ":" * 100_000 + " Kill '",
])
def test_long_lines_do_not_hang(line: str) -> None:
    start = time.monotonic()
    try:
        parse_trace(line, W)
    except InputError:
        pass
    assert time.monotonic() - start < 1.0


# ------------------------------------------------------------------------------------------
# CSV and JSON Lines


def test_csv() -> None:
    trace = parse_trace(
        "# comment\n"
        "time_s, name, rss_kb, swap_kb, oom_score_adj, reason, extra\n"
        "\n"
        "0.5,b,20,30,,\"low, then \"\"lower\"\"\",x\n"
        "0.25,a,10,0,-900,,y\n", "t.csv")
    assert trace.format == "csv" and trace.skipped == 0
    assert trace.kills == (
        Kill(t_ms=0.0, name="a", rss_kb=10, swap_kb=0, pid=None, oom_score_adj=-900, reason=None,
             line=5),
        Kill(t_ms=250.0, name="b", rss_kb=20, swap_kb=30, pid=None, oom_score_adj=None,
             reason='low, then "lower"', line=4))
    assert [k.t_ms for k in parse_trace("TIME,Name,RSS_KB,SWAP_KB\n1.5,a,1,1\n2,b,1,1", W).kills] \
        == [0.0, 500.0]


@pytest.mark.parametrize("header,expect", [
    ("time_ms,name,rss_kb", "missing column swap_kb"),
    ("time_ms,rss_kb,swap_kb", "missing column name"),
    ("time_ms,name,swap_kb,pid", "missing column rss_kb"),
    ("name,rss_kb,swap_kb", "exactly one time column"),
    ("t,name,rss,swap", "exactly one time column"),
    ("time_ms,time_s,name,rss_kb,swap_kb", "got time_ms and time_s"),
    ("time_ms,name,name,rss_kb,swap_kb", "column name appears twice"),
])
def test_csv_bad_header(header: str, expect: str) -> None:
    msg = error(f"{header}\n1,a,2,3,4\n")
    assert msg.startswith(f"{W}: line 1: ") and expect in msg


@pytest.mark.parametrize("row,expect", [
    ("1,a,2", "expected 4 cells as in the header, got 3"),
    ("1,a,2,3,4", "expected 4 cells"),
    ("x,a,2,3", "time_ms: expected a number"),
    ("nan,a,2,3", "time_ms: expected a number"),
    ("1e999,a,2,3", "time_ms: expected a finite time"),
    ("1,,2,3", "name: expected a process name"),
    ("1,a,-2,3", "rss_kb: expected a size in 0..1073741824 kB"),
    ("1,a,2,3.5", "swap_kb: expected a size as a whole number"),
    ("1,a,2,1099511627776", "swap_kb: expected a size in"),
    ("1,a,\"2", "bad CSV"),
])
def test_csv_bad_row(row: str, expect: str) -> None:
    msg = error(f"time_ms,name,rss_kb,swap_kb\n# c\n{row}\n")
    assert msg.startswith(f"{W}: line 3: ") and expect in msg


def test_csv_header_only() -> None:
    assert "no kill rows after the CSV header" in error("time_ms,name,rss_kb,swap_kb\n")


def test_jsonl() -> None:
    trace = parse_trace(
        '# comment\n{"time": 0.02, "name": "b", "rss_kb": 2, "swap_kb": 3, "pid": null}\n\n'
        '{"time": 0, "name": "a", "rss_kb": 1, "swap_kb": 0, "pid": 7, "oom_score_adj": 0, '
        '"reason": "r", "other": [1]}\n', "t.jsonl")
    assert trace.format == "jsonl"
    assert trace.kills == (Kill(0.0, "a", 1, 0, 7, 0, "r", 4), Kill(20.0, "b", 2, 3, None, None,
                                                                    None, 2))


@pytest.mark.parametrize("rec,expect", [
    ('{"time_ms": 1, "name": "a", "rss_kb": 1', "expected one JSON object per line"),
    ('[1, 2]', "expected a JSON object, got list"),
    ('{"time_ms": 1, "name": "a", "swap_kb": 1}', "rss_kb: missing"),
    ('{"name": "a", "rss_kb": 1, "swap_kb": 1}', "exactly one time key"),
    ('{"time_ms": 1, "time": 1, "name": "a", "rss_kb": 1, "swap_kb": 1}', "got time_ms and time"),
    ('{"time_ms": "1", "name": "a", "rss_kb": 1, "swap_kb": 1}', "time_ms: expected a number"),
    ('{"time_ms": NaN, "name": "a", "rss_kb": 1, "swap_kb": 1}', "finite time"),
    ('{"time_ms": 1, "name": "", "rss_kb": 1, "swap_kb": 1}', "name: expected a non-empty"),
    ('{"time_ms": 1, "name": "a", "rss_kb": true, "swap_kb": 1}', "rss_kb: expected a size in kB"),
    ('{"time_ms": 1, "name": "a", "rss_kb": 1.0, "swap_kb": 1}', "as a JSON integer"),
    ('{"time_ms": 1, "name": "a", "rss_kb": 1, "swap_kb": -1}', "swap_kb: expected a size in kB in"),
    ('{"time_ms": 1, "name": "a", "rss_kb": 1, "swap_kb": 1, "pid": -1}', "pid: expected a pid"),
    ('{"time_ms": 1, "name": "a", "rss_kb": 1, "swap_kb": 1, "reason": 5}', "reason: expected"),
    ('{"time_ms": 1, "name": "a", "rss_kb": ' + "9" * 5000 + ', "swap_kb": 1}', "JSON object"),
    ('{"a":' + "[" * 100_000 + "]" * 100_000 + "}", "JSON"),            # RecursionError
])
def test_jsonl_bad_record(rec: str, expect: str) -> None:
    good = '{"time_ms": 0, "name": "a", "rss_kb": 1, "swap_kb": 1}'
    msg = error(f"{good}\n{rec}\n{good}")
    assert msg.startswith(f"{W}: line 2: ") and expect in msg


# ------------------------------------------------------------------------------------------
# The sample traces


EXPECTED = {   # file: (format, kills, rss kB, swap kB, span ms)
    "burst.log": ("lmkd", 5, 170476, 272552, 85.0),
    "burst.csv": ("csv", 5, 170476, 272552, 85.0),
    "burst.jsonl": ("jsonl", 5, 170476, 272552, 85.0),
    "storm.log": ("lmkd", 34, 2695516, 2593148, 1504.0),
    "oom.log": ("oom", 4, 1981440, 1981440, 1502.113),
}


def test_every_sample_is_listed() -> None:
    assert sorted(p.name for p in TRACES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_traces(name: str) -> None:
    path = TRACES / name
    assert "composed" in path.read_text().splitlines()[0].lower()
    trace = read_trace(path)
    fmt, n, rss, swap, span = EXPECTED[name]
    assert (trace.format, len(trace.kills), trace.total_rss_kb, trace.total_swap_kb) == (
        fmt, n, rss, swap)
    assert trace.span_ms == pytest.approx(span)
    assert trace.total_swap_kb <= 3 << 20 and trace.total_rss_kb <= 4 << 20


def test_sample_shapes() -> None:
    burst = read_trace(TRACES / "burst.log")
    assert all(900 <= k.oom_score_adj <= 999 and k.swap_kb >= k.rss_kb for k in burst.kills)
    assert all(15 << 10 <= k.rss_kb <= 60 << 10 and 30 << 10 <= k.swap_kb <= 80 << 10
               for k in burst.kills)
    assert burst.skipped > 0
    plain = [(k.t_ms, k.name, k.rss_kb, k.swap_kb, k.pid, k.oom_score_adj, k.reason)
             for k in burst.kills]
    for other in ("burst.csv", "burst.jsonl"):
        assert [(k.t_ms, k.name, k.rss_kb, k.swap_kb, k.pid, k.oom_score_adj, k.reason)
                for k in read_trace(TRACES / other).kills] == plain
    storm = read_trace(TRACES / "storm.log")
    big = [k for k in storm.kills if k.oom_score_adj <= 200]
    assert len(big) == 3 and all(300 << 10 <= k.rss_kb <= 700 << 10 for k in big)
    assert all(150 << 10 <= k.swap_kb <= 300 << 10 for k in big)
    gaps = [b.t_ms - a.t_ms for a, b in zip(storm.kills, storm.kills[1:])]
    assert all(20 <= g <= 100 for g in gaps)
    assert sum(k.reason is None for k in storm.kills) >= 3              # the no-reason variant


def test_sample_oom_with_a_swap_ratio() -> None:
    half = read_trace(TRACES / "oom.log", oom_swap_ratio=0.5)
    assert half.total_swap_kb == sum(round(k.rss_kb * 0.5) for k in half.kills) == 990720


# ------------------------------------------------------------------------------------------
# Properties: any input gives a Trace or an InputError, quickly


def check_any(data: str | bytes) -> None:
    """Strict and lenient alike: a Trace or an InputError naming the file, quickly; a lenient
    read keeps at least the kills a strict one does."""
    for strict in (True, False):
        start = time.monotonic()
        try:
            trace = parse_trace(data, W, strict=strict)
        except InputError as e:
            assert str(e).startswith(W)
        else:
            check_trace(trace, data)
            assert strict is False or not trace.malformed
        assert time.monotonic() - start < 2.0


def check_trace(trace: Trace, data: str | bytes) -> None:
    assert trace.kills and trace.kills[0].t_ms == 0.0
    assert all(a.t_ms <= b.t_ms for a, b in zip(trace.kills, trace.kills[1:]))
    n_lines = (data.count(b"\n") if isinstance(data, bytes) else data.count("\n")) + 1
    for k in trace.kills:
        assert 0 <= k.rss_kb <= 1 << 30 and 0 <= k.swap_kb <= 1 << 30
        assert k.pid is None or 0 <= k.pid <= 1 << 22
        assert k.oom_score_adj is None or -1000 <= k.oom_score_adj <= 1000
        assert 1 <= k.line <= n_lines and k.name


FUZZ = settings(max_examples=1500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Pieces of real lines, so that random text often gets deep into the parsers.
PIECES = [
    "03-14 10:02:11.417 ", "  612   612 I ", "I/", "lowmemorykiller", "lmkd", "(  612)", ": ",
    "Kill '", "Reclaim '", "com.example.x", "' (", "8841", "), uid 10187", ", oom_score_adj ",
    "oom_adj ", "915", "-1", " to free ", "212340", "kB rss", "kB", "kb", ", ", " swap",
    "; reason: ", ", state 19", "[12345.678901] ", "Out of memory", "Memory cgroup out of memory",
    "Killed process ", "340 (systemd) ", "total-vm:17324kB, anon-rss:", "1920kB, file-rss:256kB",
    ", shmem-rss:0kB", ", UID:0 pgtables:76kB oom_score_adj:100", "Mar 14 10:02:11 host kernel: ",
    "time_ms,name,rss_kb,swap_kb", "{", "}", '"time_ms": 1', '"name": "a"', '"rss_kb": 2', ",",
    "\n", "\r\n", "#", " ", "\ufffd", "\x00", "\x1b[0m", "99999999999999999999", "12-31 23:59:59.999 ",
    # logcat -v long, lmkd's killinfo event, journalctl -o short-monotonic (issue 18)
    "[ 03-14 10:02:11.417   612:  612 I/lowmemorykiller ]", "[ ", " ]", "I killinfo: [",
    "9102,10123,925,900,48712,2", ",1000,2000", ",0.5", "]", "[12345.678901] myhost kernel: ",
]
piece_text = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_text(text: str) -> None:
    check_any(text)


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_bytes(data: bytes) -> None:
    check_any(data)


@FUZZ
@given(piece_text)
def test_fuzz_pieces(text: str) -> None:
    check_any(text)


@FUZZ
@given(st.lists(st.sampled_from([REAL_LMKD, REAL_OOM, MSG, "noise", ""]), min_size=1, max_size=8),
       st.integers(0, 2000), st.binary(max_size=4))
def test_fuzz_mutated_real_lines(lines: list[str], at: int, junk: bytes) -> None:
    data = "\n".join(lines).encode()
    at %= len(data) + 1
    check_any(data[:at] + junk + data[at:])      # insert junk anywhere
    check_any(data[:at])                         # truncate anywhere


# A grammar of kill lines with field values that are sometimes wrong, and an oracle: the trace
# must hold exactly the generated kill lines when all are valid, else name the first bad one.
INT_OK = re.compile(r"-?[0-9]{1,19}", re.ASCII)
NAMES = ["a", "com.x:y", "it's (odd)", "\ufffd", "x' (y)"]
SPECIAL = ["", "1\ufffd2", "+5", "0x10", " 5", "1.5", "\u0661\u0662", "9" * 20, "9" * 25, "-0", "007"]


def field(lo: int, hi: int) -> st.SearchStrategy[tuple[str, bool]]:
    """A number as text, and whether it is a valid value in lo..hi."""
    as_int = st.one_of(st.integers(lo - 2, lo + 2), st.integers(hi - 2, hi + 2),
                       st.integers(-10**13, 10**13), st.integers(lo, hi)).map(str)
    return st.one_of(as_int, st.sampled_from(SPECIAL)).map(
        lambda t: (t, bool(INT_OK.fullmatch(t)) and lo <= int(t) <= hi))


SIZE = field(0, 1 << 30)
LMKD_PREFIX = ["", "lowmemorykiller: ", "I/lowmemorykiller(  612): ", "I/lmkd: ",
               "03-14 10:02:11.417   612   612 I lowmemorykiller: ",
               "12-31 23:59:59.999 I/lowmemorykiller(612): ", "[ 12.5] lowmemorykiller: ",
               "2024-02-29 00:00:00.000123   612   612 I lmkd    : "]
OOM_PREFIX = ["", "[ 12.345678] ", "Mar 14 10:02:11 host kernel: ", "<3>[ 1.0] ",
              "Jan  1 00:00:00.5 h kernel: [  7.0] ", "03-14 10:02:11.417     0     0 I kernel  : "]
NOISE = ["--------- beginning of main", "I/ActivityManager( 1438): Kill 'x' (1) whatever",
         "03-14 10:02:11.426   612   614 I lowmemorykiller: Process 8841 was reaped in 9ms",
         "[ 1.0] oom_reaper: reaped process 1 (x), now anon-rss:0kB", "", "# Kill 'broken"]


@st.composite
def lmkd_line(draw: st.DrawFn) -> tuple[str, bool, str]:
    pid, pid_ok = draw(field(0, 1 << 22))
    adj, adj_ok = draw(field(-1000, 1000))
    rss, rss_ok = draw(SIZE)
    swap, swap_ok = draw(SIZE)
    has_swap = draw(st.booleans())
    tail = (f", {swap}{draw(st.sampled_from(['kB', 'kb']))} swap" if has_swap else "") + draw(
        st.sampled_from(["", "; reason: min watermark is breached even after kill", "; reason: "]))
    line = (draw(st.sampled_from(LMKD_PREFIX)) + draw(st.sampled_from(["Kill", "Reclaim"]))
            + f" '{draw(st.sampled_from(NAMES))}' ({pid})"
            + draw(st.sampled_from(["", ", uid 10123"])) + ", "
            + draw(st.sampled_from(["oom_score_adj", "oom_adj"])) + f" {adj}"
            + draw(st.sampled_from(["", ", state 19"])) + f" to free {rss}kB"
            + draw(st.sampled_from([" rss", ""])) + tail)
    return line, pid_ok and adj_ok and rss_ok and (swap_ok or not has_swap), rss


@st.composite
def oom_line(draw: st.DrawFn) -> tuple[str, bool, str]:
    pid, pid_ok = draw(field(0, 1 << 22))
    anon, anon_ok = draw(SIZE)
    adj, adj_ok = draw(field(-1000, 1000))
    has_adj = draw(st.booleans())
    digits = st.integers(0, 10**15).map(str)
    line = (draw(st.sampled_from(OOM_PREFIX))
            + draw(st.sampled_from(["Out of memory: ", "Memory cgroup out of memory: ", ""]))
            + f"Killed process {pid} ({draw(st.sampled_from(['x', 'a b', 'k(1)']))}) "
            + f"total-vm:{draw(digits)}kB, anon-rss:{anon}kB, file-rss:{draw(digits)}kB"
            + draw(st.sampled_from(["", ", shmem-rss:0kB"]))
            + (draw(st.sampled_from([", UID:0 pgtables:76kB", ""])) + f" oom_score_adj:{adj}"
               if has_adj else ""))
    return line, pid_ok and anon_ok and (adj_ok or not has_adj), anon


any_line = st.one_of(lmkd_line(), oom_line(), st.sampled_from(NOISE).map(lambda t: (t, None, "")))


@settings(max_examples=1000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(any_line, min_size=1, max_size=6))
def test_fuzz_grammar(lines: list[tuple[str, bool | None, str]]) -> None:
    text = "\n".join(t for t, _, _ in lines)
    kills = [(n, rss) for n, (_, ok, rss) in enumerate(lines, 1) if ok is not None]
    bad = [n for n, (_, ok, _) in enumerate(lines, 1) if ok is False]
    if bad:
        assert error(text).startswith(f"{W}: line {bad[0]}: ")
    elif not kills:
        assert "no kill lines found" in error(text)
    else:
        trace = parse_trace(text, W)
        want = [(n, int(rss)) for n, rss in kills]
        assert [(k.line, k.rss_kb) for k in trace.kills] == want
        check_trace(trace, text)


name_text = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                    max_size=30).filter(lambda s: s.strip() == s and "' (" not in s)
kill_strategy = st.builds(
    Kill, t_ms=st.integers(0, 500), name=name_text, rss_kb=st.integers(0, 1 << 30),
    swap_kb=st.integers(0, 1 << 30), pid=st.integers(0, 1 << 22),
    oom_score_adj=st.integers(-1000, 1000),
    reason=st.one_of(st.none(), st.text("abcdefghij ()%<>0123456789", min_size=1, max_size=30)
                     .map(str.strip).filter(bool)),
    line=st.just(0))


@settings(max_examples=400, deadline=None)
@given(st.lists(kill_strategy, min_size=1, max_size=12), st.data())
def test_round_trip(kills: list[Kill], data: st.DataObject) -> None:
    """Kills written as a threadtime log (with noise), as CSV and as JSON Lines read back equal."""
    kills.sort(key=lambda k: k.t_ms)
    out, recs = ["--------- beginning of main"], []
    table = io.StringIO()
    rows = csv.writer(table, lineterminator="\n")
    rows.writerow(["time_ms", "name", "rss_kb", "swap_kb", "pid", "oom_score_adj", "reason"])
    base = 10 * 3_600_000 + 17
    for k in kills:
        if data.draw(st.booleans()):
            out.append("03-14 10:00:00.000  1438  1631 I ActivityManager: unrelated")
        ms = base + k.t_ms
        h, m, sec = ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60
        stamp = f"03-14 {h:02d}:{m:02d}:{sec:02d}.{ms % 1000:03d}"
        tail = f"{k.swap_kb}kB swap; reason: {k.reason}" if k.reason else f"{k.swap_kb}kb swap"
        out.append(f"{stamp}   612   612 I lowmemorykiller: Kill '{k.name}' ({k.pid}), uid 10000, "
                   f"oom_score_adj {k.oom_score_adj} to free {k.rss_kb}kB rss, {tail}")
        rows.writerow([k.t_ms, k.name, k.rss_kb, k.swap_kb, k.pid, k.oom_score_adj, k.reason or ""])
        recs.append(json.dumps({"time_ms": k.t_ms, "name": k.name, "rss_kb": k.rss_kb,
                                "swap_kb": k.swap_kb, "pid": k.pid,
                                "oom_score_adj": k.oom_score_adj, "reason": k.reason}))
    t0 = kills[0].t_ms
    want = [(k.t_ms - t0, k.name, k.rss_kb, k.swap_kb, k.pid, k.oom_score_adj, k.reason)
            for k in kills]
    for text in ("\n".join(out), table.getvalue(), "\n".join(recs)):
        got = parse_trace(text, W).kills
        assert [(k.t_ms, k.name, k.rss_kb, k.swap_kb, k.pid, k.oom_score_adj, k.reason)
                for k in got] == want


def test_module_docstring_lists_every_format() -> None:
    doc = traces.__doc__ or ""
    for word in ("JSON Lines", "CSV", "threadtime", "-v time", "brief", "Reclaim", "oom_adj",
                 "Killed process", "oom_swap_ratio", "anon-rss", "64 MiB", "back-to-back"):
        assert word in doc, word
