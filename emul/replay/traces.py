"""Kill traces: the low-memory-killer storms that ``emul replay`` plays back.

``read_trace(path)`` and ``parse_trace(data, where)`` turn a log into a :class:`Trace`: the kills in
time order, each with the process's resident and swapped sizes. Nothing in a trace is executed or
evaluated; JSON goes through :func:`json.loads` only and CSV through the :mod:`csv` module. Every
problem is one :class:`~emul.errors.InputError` naming the file, ``line N`` and what was expected.

Accepted formats
----------------

The format is chosen from the first line that is neither blank nor a comment (``#`` first):

- it starts with ``{``: **JSON Lines** (``jsonl``);
- it is a CSV header, i.e. two or more comma-separated identifiers of which one at least is a
  column name below or starts with ``time``, ``rss`` or ``swap``: **CSV** (``csv``);
- anything else: a **log**, read line by line for lmkd and kernel OOM-killer kill lines
  (``lmkd``, or ``oom`` when it holds kernel OOM kills only).

**CSV and JSON Lines.** One kill per row or per line, with these columns (CSV, a header row
first, names case-insensitive, any order) or keys (JSON objects)::

    time_ms | time_s | time   exactly one: milliseconds, or seconds (time_s and time are the same)
    name                      the process name, non-empty
    rss_kb                    resident size in kB, a whole number 0 .. 1 TiB
    swap_kb                   swapped-out size in kB, a whole number 0 .. 1 TiB
    pid                       optional: 0 .. 4194304, empty (CSV) or null (JSON) for none
    oom_score_adj             optional: -1000 .. 1000, empty or null for none
    reason                    optional: text, empty or null for none

e.g. ``time_ms,name,rss_kb,swap_kb,pid,oom_score_adj`` then ``0,com.example.news,48712,61200,9102,925``.
Other columns and keys are ignored. Blank lines and lines starting with ``#`` are ignored; every
other line must be a record (a CSV row must have as many cells as the header). Times are finite
numbers; rows may come in any order and are sorted by time (rows with equal times keep their
order). In JSON the sizes, pid and oom_score_adj must be JSON integers.

**lmkd kill lines** (logcat tag ``lowmemorykiller``). The message, as lmkd prints it since
Android 12 (``kill_info``), without it, and in Android 11 (``oom_adj``, no swap: swap is 0)::

    Kill 'NAME' (PID), uid UID, oom_score_adj ADJ to free RSSkB rss, SWAPkB swap; reason: TEXT
    Kill 'NAME' (PID), uid UID, oom_score_adj ADJ to free RSSkB rss, SWAPkb swap
    Kill 'NAME' (PID), uid UID, oom_adj ADJ to free RSSkB; reason: TEXT

Samsung's modified lmkd (tag ``lmkd``, verb ``Reclaim``, an extra ``state N``) is accepted too,
because the one real storm on record (docs/workloads.md) is in that form::

    Reclaim 'NAME' (PID), uid UID, oom_score_adj ADJ, state N to free RSSkB rss, SWAPkB swap; reason: TEXT

Either verb is accepted under either tag; ``, uid UID``, ``, SWAPkB swap`` and ``; reason: TEXT``
may each be missing (``kB`` in any case). The message may carry any of these prefixes:

    03-14 10:02:11.417   612   612 I lowmemorykiller: MSG     logcat -v threadtime (also -v uid)
    03-14 10:02:11.417 I/lowmemorykiller(  612): MSG          logcat -v time (pid optional)
    I/lowmemorykiller(  612): MSG                             logcat -v brief (no time)
    I/lowmemorykiller: MSG                                    logcat -v tag (no time)
    lowmemorykiller: MSG  or just  MSG                        no prefix (no time)

A logcat time may have a year (``2024-03-14 10:02:11.417``, -v year), up to 9 fractional digits
(-v usec, -v nsec) and a zone (``+0000``, -v zone), or be seconds (``12345.678``, -v monotonic
or -v epoch). Other tags' lines (``ActivityManager: Kill ...``) are not lmkd kills. An ``adb
bugreport``'s text holds its logcat sections in these forms and is read like any log.

``logcat -v long`` puts the prefix on a header line of its own and the message on the next::

    [ 03-14 10:02:11.417   612:  612 I/lowmemorykiller ]
    Kill 'NAME' (PID), uid UID, oom_score_adj ADJ to free RSSkB rss, SWAPkB swap; reason: TEXT

**lmkd's killinfo event** (``logcat -b events``, tag ``killinfo``: docs/workloads.md, "The
killinfo event") carries ``[Pid,Uid,OomAdj,MinOomAdj,TaskSize,kill_reason,MemFree,Cached,
SwapCached,Buffers,Shmem,Unevictable,SwapTotal,SwapFree,...,TaskSwapSize,...]``; releases logged
25, 29 or 38 values and any length from 6 on is read: rss is TaskSize, swap TaskSwapSize (the
30th value, 0 where the event is shorter), and MemFree and SwapFree are kept as the kill's
memory state. An event and an lmkd kill line of the same pid are one kill (the line's name,
the event's memory state); an event with no line (the events buffer alone) is a kill named
``pid PID``.

**Kernel OOM-killer lines** (mm/oom_kill.c), current and older kernels::

    Out of memory: Killed process PID (COMM) total-vm:NkB, anon-rss:NkB, file-rss:NkB, shmem-rss:NkB, UID:N pgtables:NkB oom_score_adj:N
    Memory cgroup out of memory: Killed process PID (COMM) total-vm:NkB, anon-rss:NkB, file-rss:NkB, shmem-rss:NkB
    Killed process PID (COMM) total-vm:NkB, anon-rss:NkB, file-rss:NkB

The text before ``: Killed process`` must contain "out of memory"; from there on ("Out of
memory", "Memory cgroup out of memory", "Out of memory (oom_kill_allocating_task)") it becomes
the kill's ``reason``. ``shmem-rss`` and ``UID/pgtables/oom_score_adj`` may be missing (older
kernels). The prefix may be dmesg's ``[12345.678901]``
(optionally ``<3>`` before it and a caller id ``[T123]``/``[C3]`` after it), ``dmesg -T``'s
``[Thu Mar 14 10:02:11 2024]``, a syslog or journal line ``Mar 14 10:02:11 host kernel: ...``
(or ``2024-03-14T10:02:11.123456+0000 host kernel: ...``, journalctl -o short-iso, with or
without a dmesg stamp after ``kernel:``), journalctl -o short-monotonic's ``[12345.678901] host
kernel: ...``, a logcat line from the kernel buffer (tag ``kernel`` or ``Out of memory``), or none.
Only ``kernel`` lines of a journal count: another program quoting the text is not a kill.
``oom-kill:constraint=...``, ``oom_reaper: reaped process ...``, ``... invoked oom-killer`` and
the task table are ordinary lines.

- **rss** is ``anon-rss`` only: unmap frees anonymous pages (and their swap slots); file pages
  stay in the page cache and shmem pages belong to their shmem file, so neither is freed by the
  kill's unmap in the way emul models.
- **swap**: the kernel prints no swap size for the victim, so swap = round(anon-rss x
  ``oom_swap_ratio``) (default 1.0; 0 replays the rss alone). It applies to OOM lines only.

**Log lines in general.** Lines are split on ``\\n`` (a ``\\r`` before it is dropped), so line
numbers match ``grep -n``. ANSI colour codes (logcat -v color) are removed. A line that is not a
kill line is skipped and counted in ``skipped``; so is a comment line (``#`` first, after
optional blanks), even one that quotes a kill line. Blank lines are not counted. A line that
*is* a kill line, i.e. its message starts with ``Kill '``/``Reclaim '`` under an lmkd tag (or no
tag) or with ``Killed process`` (after an out-of-memory prefix, or none), or a killinfo event,
must parse in full, or the trace is refused (``strict``) or the line is skipped and listed in
``Trace.malformed`` (``strict=False``, emul replay's default); so is a line that holds ``lowmemorykiller: Kill '`` or ``out of memory:
Killed process`` behind a prefix emul does not recognise. A log may mix lmkd and OOM kills; its
``format`` is then ``lmkd``.

**Times in a log.** Each kill line's time comes from its prefix. When kill lines carry times on
different clocks (a journal line has both the syslog time and the dmesg seconds), the clock found
on the most kill lines is used (on a tie: seconds, then dated times, then month-day times). A
kill line without a time on that clock (brief, tag or no prefix) is taken as back-to-back with the
previous kill (t = previous + 0), or with the first timed kill if none came before; with no times
at all every kill is at 0. Times never go backwards: a month-day time more than half a year
before the previous kill's is in the next year (a log across New Year; months are counted as in
a leap year), and any other step back (a clock change, a reboot's dmesg reset, logcat merging
buffers out of order) is taken as back-to-back. ``t_ms`` is then relative to the first kill, so
the first is at 0.0. Timezones are ignored (a trace is one clock).

**Limits.** At most 64 MiB (``MAX_TRACE_BYTES``). Bytes that are not UTF-8 are replaced with
U+FFFD and reading goes on (logs hold binary junk), but a kill line with a replacement character
in a number is malformed. Sizes above 1 TiB, negative sizes, pids above 4194304 (PID_MAX_LIMIT)
and oom_score_adj outside -1000..1000 are refused. A trace with no kills is refused.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

from emul.config.yamlread import read_input_bytes
from emul.errors import InputError

__all__ = ["Kill", "Trace", "TraceFormat", "read_trace", "parse_trace", "MAX_TRACE_BYTES"]

TraceFormat = Literal["lmkd", "oom", "csv", "jsonl"]

MAX_TRACE_BYTES = 64 << 20    # a storm log is kB to MB; anything near this is the wrong file
MAX_KB = 1 << 30              # 1 TiB in kB: bigger is a corrupt number, not a process
PID_MAX = 1 << 22             # PID_MAX_LIMIT on 64-bit Linux
ADJ_MIN, ADJ_MAX = -1000, 1000  # OOM_SCORE_ADJ_MIN/MAX
MAX_NAME = 1024               # lmkd's taskname comes from /proc/PID/cmdline, truncated far below
MAX_TIME_MS = 1e13            # ~300 years: keeps float arithmetic on times exact enough
MAX_DIGITS = 19               # int() on longer digit strings is slow or out of every range here
NO_KILLS = "expected lmkd, kernel OOM, CSV or JSON Lines"
SIZE_RANGE = f"0..{MAX_KB} kB (1 TiB)"


@dataclass(frozen=True)
class Kill:
    """One kill: who died, how much it held, when (ms after the trace's first kill)."""

    t_ms: float
    name: str
    rss_kb: int
    swap_kb: int
    pid: int | None
    oom_score_adj: int | None
    reason: str | None
    line: int             # 1-based line of the file it came from
    mem_free_kb: int | None = None    # the system's MemFree / SwapFree at the kill, where the
    swap_free_kb: int | None = None   # log has lmkd's killinfo event for it


@dataclass(frozen=True)
class Malformed:
    """A kill line (or record) that did not parse, skipped by a lenient read."""

    line: int             # 1-based
    reason: str           # what was expected
    text: str             # the line's first characters

    def describe(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class Trace:
    """The kills of one trace, sorted by time, how many unrelated lines were skipped, and (read
    leniently) the kill lines that did not parse."""

    format: TraceFormat
    kills: tuple[Kill, ...]
    skipped: int
    where: str
    malformed: tuple[Malformed, ...] = ()
    stepped_back: tuple[int, ...] = ()    # log lines whose time went back (taken back-to-back)

    @property
    def total_rss_kb(self) -> int:
        return sum(k.rss_kb for k in self.kills)

    @property
    def total_swap_kb(self) -> int:
        return sum(k.swap_kb for k in self.kills)

    @property
    def span_ms(self) -> float:
        """Time from the first kill to the last."""
        return self.kills[-1].t_ms if self.kills else 0.0


# ---------------------------------------------------------------------------------------------
# Entry points


def read_trace(path: str | Path, oom_swap_ratio: float = 1.0, strict: bool = True) -> Trace:
    """Read and parse the trace file at ``path`` (see the module docstring for the formats;
    ``strict``: as parse_trace)."""
    where = str(path)
    try:   # a regular file only (a FIFO would hang), never more than the cap
        data = read_input_bytes(where, path, MAX_TRACE_BYTES, "a trace file")
    except InputError as e:
        raise InputError(where, None, f"cannot read the trace: {e.expected}") from None
    return parse_trace(data, where, oom_swap_ratio, strict)


def parse_trace(data: str | bytes, where: str, oom_swap_ratio: float = 1.0,
                strict: bool = True) -> Trace:
    """Parse a trace held in memory; ``where`` names it in errors (usually the file's path).

    ``oom_swap_ratio`` sets the swap of kernel OOM kills, which the kernel does not print:
    swap_kb = round(anon-rss x ratio). It must be a finite number >= 0.

    ``strict=False`` (emul replay's default): a kill line or record that does not parse (a line
    cut off when logcat's buffer wrapped, a hand-edited row) is skipped and listed in
    ``Trace.malformed`` instead of refusing the file; a trace whose every kill is malformed,
    and a bad CSV header, are still refused.
    """
    if (isinstance(oom_swap_ratio, bool) or not isinstance(oom_swap_ratio, (int, float))
            or not math.isfinite(oom_swap_ratio) or oom_swap_ratio < 0):
        raise InputError(where, "oom_swap_ratio",
                         f"expected a finite number >= 0, got {oom_swap_ratio!r}")
    if len(data) > MAX_TRACE_BYTES:
        raise InputError(where, None, f"the trace is larger than {MAX_TRACE_BYTES >> 20} MiB; "
                                      "expected a log of one storm (cut it with grep or sed)")
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    lines = text.removeprefix("\ufeff").split("\n")
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]

    bad: list[Malformed] | None = None if strict else []
    first = next((ln.strip() for ln in lines if ln.strip() and not _is_comment(ln)), "")
    if first.startswith("{"):
        return _finish_table("jsonl", _parse_jsonl(lines, where, bad), where, bad)
    if _looks_like_csv_header(first):
        return _finish_table("csv", _parse_csv(lines, where, bad), where, bad)
    return _parse_log(lines, where, float(oom_swap_ratio), bad)


# ---------------------------------------------------------------------------------------------
# Shared helpers


@dataclass
class _Raw:
    """A kill before times are made relative: ``stamps`` maps a clock to its time in ns."""

    line: int
    name: str
    rss_kb: int
    swap_kb: int
    pid: int | None
    adj: int | None
    reason: str | None
    kind: str                                  # "lmkd", "oom", "killinfo" or "table"
    stamps: dict[str, int] | None = None       # logs
    t_ms: float = 0.0                          # CSV and JSON Lines
    mem_free_kb: int | None = None             # killinfo's memory state
    swap_free_kb: int | None = None


def _skip_or_raise(e: InputError, bad: list[Malformed] | None, n: int, line: str) -> None:
    """Strict (bad is None): raise the line's error; lenient: note it and go on."""
    if bad is None:
        raise e
    reason = e.expected.removeprefix(f"line {n}: ")
    bad.append(Malformed(n, reason, _show(line, 60)))


def _all_malformed(where: str, bad: list[Malformed] | None) -> None:
    """A lenient read that kept no kill: the trace is refused, naming the first bad line."""
    if bad:
        raise InputError(where, None, f"every kill line is malformed ({len(bad)}); the first, "
                                      f"{bad[0].describe()}")


def _err(where: str, line: int, expected: str) -> InputError:
    return InputError(where, f"line {line}", expected)


def _show(text: str, limit: int = 48) -> str:
    """A short, quoted, printable excerpt of the offending text."""
    cut = text if len(text) <= limit else text[:limit] + "..."
    shown = json.dumps(cut, ensure_ascii=False)
    return shown if shown.isprintable() else json.dumps(cut)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


_INT = re.compile(r"-?[0-9]{1,%d}" % MAX_DIGITS, re.ASCII)


def _checked_int(text: str, what: str, lo: int, hi: int) -> int:
    """``text`` (ASCII digits, maybe a minus) as an int in lo..hi, else ValueError saying so."""
    if not _INT.fullmatch(text):
        raise ValueError(f"expected {what} as a whole number, got {_show(text)}")
    value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"expected {what} in {lo}..{hi}, got {text}")
    return value


def _size(text: str, what: str) -> int:
    """A size in kB: a whole number 0 .. 1 TiB, else ValueError saying so."""
    if not _INT.fullmatch(text):
        raise ValueError(f"expected {what} as a whole number of kB, got {_show(text)}")
    value = int(text)
    if not 0 <= value <= MAX_KB:
        raise ValueError(f"expected {what} in {SIZE_RANGE}, got {text} kB")
    return value


# ---------------------------------------------------------------------------------------------
# Logs: prefixes. Every pattern is anchored and its repeats bounded, so no line can make a
# regex backtrack for long; re.ASCII keeps \d, \w and \s to ASCII (int() would take Arabic digits).

_A = re.ASCII
_MONTHS = {m: i for i, m in enumerate(
    "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), start=1)}
_MON = "(?P<monname>" + "|".join(_MONTHS) + ")"
_HMS = r"(?P<hh>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<ss>[0-9]{2})"
_LOGCAT_TS = (r"(?:(?:(?P<year>[0-9]{4})-)?(?P<mon>[0-9]{2})-(?P<day>[0-9]{2})\s+" + _HMS
              + r"(?:\.(?P<frac>[0-9]{1,9}))?|(?P<secs>[0-9]{1,12})\.(?P<sfrac>[0-9]{1,9}))"
              + r"(?:\s+[+-][0-9]{4})?")
_PRIO = r"(?P<prio>[VDIWEFSA])"
_DMESG_TS = (r"(?:<[0-9]{1,3}>)?\[\s*(?P<secs>[0-9]{1,12})\.(?P<sfrac>[0-9]{1,9})\]"
             r"(?:\s*\[\s*[TC][0-9]{1,7}\])?")
_IDENT = r"(?P<host>\S{1,255})\s+(?P<tag>[^\s:\[]{1,64})(?:\[[0-9]{1,10}\])?: ?(?P<msg>.*)$"

# (pattern, kind of timestamp). Order matters: -v time before -v threadtime, since a threadtime
# pattern could misread a time-format line whose message holds " I tag: ".
_PREFIXES: list[tuple[re.Pattern[str], str | None]] = [
    (re.compile(r"\s*" + _LOGCAT_TS + r"\s+" + _PRIO
                + r"/(?P<tag>[^(:]{0,128}?)\s*(?:\(\s*[0-9]{1,10}\s*\))?: ?(?P<msg>.*)$", _A),
     "logcat"),
    (re.compile(r"\s*" + _LOGCAT_TS + r"\s+(?:[\w.]{1,32}\s+){1,3}?" + _PRIO
                + r"\s+(?P<tag>[^:]{0,128}?)\s*: ?(?P<msg>.*)$", _A), "logcat"),
    (re.compile(r"\s*" + _PRIO + r"/(?P<tag>[^(:]{0,128}?)\s*\(\s*[0-9]{1,10}\s*\): ?(?P<msg>.*)$",
                _A), None),
    (re.compile(r"\s*" + _PRIO + r"/(?P<tag>[^(:]{0,128}?)\s*: ?(?P<msg>.*)$", _A), None),
    # journalctl -o short-monotonic: "[12345.678901] host kernel: ..."
    (re.compile(r"\s*\[\s*(?P<secs>[0-9]{1,12})\.(?P<sfrac>[0-9]{1,9})\]\s+" + _IDENT, _A),
     "secs"),
    (re.compile(r"\s*" + _DMESG_TS + r" ?(?P<msg>.*)$", _A), "secs"),
    (re.compile(r"\s*\[(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+" + _MON + r"\s+(?P<day>[0-9]{1,2})\s+"
                + _HMS + r"\s+(?P<year>[0-9]{4})\] ?(?P<msg>.*)$", _A), "dmesg_t"),
    (re.compile(r"\s*" + _MON + r"\s+(?P<day>[0-9]{1,2})\s+" + _HMS
                + r"(?:\.(?P<frac>[0-9]{1,9}))?\s+" + _IDENT, _A), "syslog"),
    (re.compile(r"\s*(?P<year>[0-9]{4})-(?P<mon>[0-9]{2})-(?P<day>[0-9]{2})T" + _HMS
                + r"(?:[.,](?P<frac>[0-9]{1,9}))?(?:Z|[+-][0-9]{2}:?[0-9]{2})?\s+" + _IDENT, _A),
     "iso"),
]
# logcat -v long: a header line "[ 03-14 10:02:11.417   612:  612 I/lowmemorykiller ]", the
# message on the next line
_LONG_HEAD = re.compile(r"\[\s+(?P<ts>" + _LOGCAT_TS + r")\s+[0-9]{1,10}:\s*(?:0x)?[0-9a-f]{1,10}"
                        r"\s+(?P<prio2>[VDIWEFSA])/(?P<tag2>[^\]]{1,128}?)\s*\]$", _A)
# lmkd's killinfo event (logcat -b events): "killinfo: [pid,uid,adj,min_adj,rss,reason,...]"
_KILLINFO = re.compile(r"\[(?P<vals>[-0-9., ]{1,2000})\]$", _A)
_INNER_DMESG = re.compile(r"\s*" + _DMESG_TS + r" ?(?P<msg>.*)$", _A)   # after "kernel: "
_BARE_TAG = re.compile(r"\s*(?P<tag>lowmemorykiller|lmkd)(?:\(\s*[0-9]{1,10}\s*\))?\s*: ?"
                       r"(?P<msg>.*)$", _A)
_ANSI = re.compile(r"\x1b\[[0-9;]{0,32}[A-Za-z]")
# A kill line behind a prefix none of the above recognised: refuse rather than skip a kill.
_UNRECOGNISED = re.compile(r"(?:lowmemorykiller|lmkd)\b[^:\n]{0,40}:\s*(?:Kill|Reclaim) '"
                           r"|out of memory[^:\n]{0,60}: Killed process ", _A | re.IGNORECASE)

_LMKD_TAGS = ("lowmemorykiller", "lmkd")
_CUM_DAYS_LEAP = (0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 366)
_DAY_NS = 86_400 * 10**9
_YEAR_NS = 366 * _DAY_NS         # month-day times count months as in a leap year
_HALF_YEAR_NS = 183 * _DAY_NS


def _is_leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _frac_ns(frac: str | None) -> int:
    return int(frac.ljust(9, "0")) if frac else 0


def _stamp(kind: str, m: re.Match[str]) -> tuple[str, int]:
    """The (clock, ns) of a matched prefix; ValueError if its fields are not a real time."""
    g = m.groupdict()
    if g.get("secs") is not None:
        return "secs", int(g["secs"]) * 10**9 + _frac_ns(g["sfrac"])
    year = int(g["year"]) if g.get("year") else None
    mon = _MONTHS[g["monname"]] if g.get("monname") else int(g["mon"])
    day, hh, mi, ss = int(g["day"]), int(g["hh"]), int(g["mi"]), int(g["ss"])
    leap = year is None or _is_leap(year)
    if not 1 <= mon <= 12:
        raise ValueError(f"expected a month 1..12 in the timestamp, got {mon}")
    dim = _CUM_DAYS_LEAP[mon] - _CUM_DAYS_LEAP[mon - 1] - (mon == 2 and not leap)
    if not 1 <= day <= dim or hh > 23 or mi > 59 or ss > 60:
        raise ValueError("expected a real date and time in the timestamp "
                         f"(MM-DD HH:MM:SS), got {_show(m.group(0)[:40])}")
    in_day = ((hh * 60 + mi) * 60 + ss) * 10**9 + _frac_ns(g.get("frac"))
    if year is None:
        return "mmdd", (_CUM_DAYS_LEAP[mon - 1] + day - 1) * _DAY_NS + in_day
    return "date", _days_from_civil(year, mon, day) * _DAY_NS + in_day


def _split_prefix(line: str) -> tuple[list[tuple[str, re.Match[str]]], str | None, str]:
    """(timestamp matches, tag or None, message) of one log line."""
    for rx, kind in _PREFIXES:
        m = rx.match(line)
        if m is None:
            continue
        stamps = [(kind, m)] if kind else []
        tag = m.groupdict().get("tag")
        msg = m.group("msg")
        if kind in ("syslog", "iso"):          # "kernel: [12345.678901] Out of memory: ..."
            inner = _INNER_DMESG.match(msg)
            if inner:
                stamps.append(("secs", inner))
                msg = inner.group("msg")
        break
    else:
        stamps, tag, msg = [], None, line
    if tag is None:                            # "lowmemorykiller: Kill ..." with no other prefix
        bare = _BARE_TAG.match(msg)
        if bare:
            tag, msg = bare.group("tag"), bare.group("msg")
    return stamps, tag, msg


# ---------------------------------------------------------------------------------------------
# Logs: kill messages. Each is parsed in steps so that an error can say which part is wrong.

_Step = tuple[re.Pattern[str], str]
_LMKD_FORM = ("an lmkd kill line is \"Kill 'NAME' (PID), uid UID, oom_score_adj ADJ "
              "to free RSSkB rss, SWAPkB swap; reason: TEXT\"")
_LMKD_STEPS: list[_Step] = [
    (re.compile(r"(?:Kill|Reclaim) '(?P<name>.{1,%d}?)' \((?P<pid>-?[0-9]{1,20})\)" % MAX_NAME, _A),
     "'NAME' (PID) after the verb, PID a whole number"),
    (re.compile(r"(?:, uid (?P<uid>[0-9]{1,20}))?,? (?:oom_score_adj|oom_adj) "
                r"(?P<adj>-?[0-9]{1,20})"
                r"(?:, state [0-9]{1,20})?", _A),
     "', uid UID, oom_score_adj ADJ'"),
    (re.compile(r",? to free (?P<rss>-?[0-9]{1,20}) ?[kK][bB](?: rss)?", _A),
     "' to free RSSkB rss' with RSS a whole number of kB"),
    (re.compile(r"(?:, (?P<swap>-?[0-9]{1,20}) ?[kK][bB] swap)?"
                r"(?:; reason: ?(?P<reason>.*))?$", _A),
     "', SWAPkB swap' with SWAP a whole number of kB, then '; reason: TEXT' or the end of the line"),
]
_OOM_FORM = ("a kernel OOM line is \"Killed process PID (COMM) total-vm:NkB, anon-rss:NkB, "
             "file-rss:NkB, shmem-rss:NkB, UID:N pgtables:NkB oom_score_adj:N\"")
_OOM_STEPS: list[_Step] = [
    (re.compile(r"Killed process (?P<pid>-?[0-9]{1,20}) \((?P<name>.{1,64}?)\),? "
                r"(?:UID:? ?[0-9]{1,20},? )?total-vm:", _A),
     "'PID (COMM) total-vm:' after 'Killed process'"),
    (re.compile(r"[0-9]{1,20}kB, anon-rss:(?P<rss>-?[0-9]{1,20})kB, file-rss:[0-9]{1,20}kB"
                r"(?:, shmem-rss:[0-9]{1,20}kB)?", _A),
     "'NkB, anon-rss:NkB, file-rss:NkB' with whole numbers of kB"),
    (re.compile(r"(?:,? UID:[0-9]{1,20})?(?: pgtables:[0-9]{1,20}kB)?"
                r"(?: oom_score_adj:(?P<adj>-?[0-9]{1,20}))?$", _A),
     "', UID:N pgtables:NkB oom_score_adj:N' or the end of the line"),
]
_OOM_CAUSE = re.compile(r"(?:memory cgroup )?out of memory.*$", _A | re.IGNORECASE)
_OOM_HEAD = re.compile(r"(?:(?P<why>[^:\n]{1,100}): )?(?=Killed process\b)", _A)


def _run_steps(body: str, steps: list[_Step], form: str) -> dict[str, str | None]:
    """Match ``steps`` one after another from the start of ``body``; ValueError at the first
    that fails, naming what it expected and quoting the text found there."""
    pos, fields = 0, {}
    for rx, expected in steps:
        m = rx.match(body, pos)
        if m is None:
            raise ValueError(f"malformed kill line: expected {expected}, got {_show(body[pos:])} "
                             f"({form})")
        fields.update(m.groupdict())
        pos = m.end()
    return fields


def _lmkd_kill(body: str) -> dict[str, Any]:
    f = _run_steps(body, _LMKD_STEPS, _LMKD_FORM)
    reason = (f["reason"] or "").strip() or None
    return {"name": f["name"], "pid": _checked_int(f["pid"], "the pid", 0, PID_MAX),
            "adj": _checked_int(f["adj"], "oom_score_adj", ADJ_MIN, ADJ_MAX),
            "rss_kb": _size(f["rss"], "the rss"),
            "swap_kb": _size(f["swap"], "the swap") if f["swap"] is not None else 0,
            "reason": reason}


def _oom_kill(body: str, why: str | None, ratio: float) -> dict[str, Any]:
    f = _run_steps(body, _OOM_STEPS, _OOM_FORM)
    rss = _size(f["rss"], "anon-rss")
    swap = round(rss * ratio)
    if swap > MAX_KB:
        raise ValueError(f"anon-rss {rss}kB x oom_swap_ratio {ratio} is more than 1 TiB of swap; "
                         "expected a smaller oom_swap_ratio")
    adj = f["adj"]
    return {"name": f["name"], "pid": _checked_int(f["pid"], "the pid", 0, PID_MAX),
            "adj": _checked_int(adj, "oom_score_adj", ADJ_MIN, ADJ_MAX) if adj else None,
            "rss_kb": rss, "swap_kb": swap, "reason": why.strip() if why else None}


def _classify(tag: str | None, msg: str) -> tuple[str, str, str | None] | None:
    """("lmkd" | "oom", message body, OOM reason) if the line is a kill line, else None."""
    body = msg.strip()
    t = tag.strip().lower() if tag is not None else None
    t = t or None                              # an empty tag (some kernel-buffer lines) is none
    if (t is None or t in _LMKD_TAGS) and body.startswith(("Kill '", "Reclaim '")):
        return "lmkd", body, None
    if t is None or t == "kernel":
        m = _OOM_HEAD.match(body)
        why = m.group("why") if m else None
        if m and why is None:
            return "oom", body[m.end():], None
        if m and why is not None:
            cause = _OOM_CAUSE.search(why)     # drop what a log tool put before the kernel's text
            if cause:
                return "oom", body[m.end():], cause.group(0)
    elif "out of memory" in t and body.startswith("Killed process "):   # logcat -b kernel
        return "oom", body, tag.strip()
    return None


def _log_kill(line: str, n: int, where: str, ratio: float) -> _Raw | None:
    """The kill on log line ``n``, or None if it is not a kill line."""
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    stamps_m, tag, msg = _split_prefix(line)
    if tag is not None and tag.strip() == "killinfo":
        try:
            fields = _killinfo(msg.strip())
            stamps = dict(_stamp(k, m) for k, m in stamps_m)
        except ValueError as e:
            raise _err(where, n, str(e)) from None
        return _Raw(line=n, kind="killinfo", stamps=stamps, **fields)
    found = _classify(tag, msg)
    if found is None:
        if tag is None and _UNRECOGNISED.search(msg):
            raise _err(where, n, "a kill line with a log prefix emul does not recognise; expected "
                       "logcat threadtime/time/brief/tag, dmesg, syslog/journal or no prefix, "
                       f"got {_show(line)}")
        return None
    kind, body, why = found
    try:
        fields = _lmkd_kill(body) if kind == "lmkd" else _oom_kill(body, why, ratio)
        stamps = dict(_stamp(k, m) for k, m in stamps_m)
    except ValueError as e:
        raise _err(where, n, str(e)) from None
    return _Raw(line=n, kind=kind, stamps=stamps, **fields)


def _killinfo(msg: str) -> dict[str, Any]:
    """lmkd's killinfo event values (docs/workloads.md, "The killinfo event"): Pid, Uid, OomAdj,
    MinOomAdj, TaskSize (rss kB), kill_reason, 19 meminfo values (MemFree first, SwapFree the
    8th), then timing, TaskSwapSize (the 30th value) and pressure. Releases logged 25, 29 or
    38 values: any length from 6 on is taken, swap only where it is there."""
    m = _KILLINFO.match(msg)
    if m is None:
        raise ValueError(f"malformed killinfo event: expected [pid,uid,oom_adj,...], got "
                         f"{_show(msg)}")
    vals = [v.strip() for v in m.group("vals").split(",")]
    if len(vals) < 6:
        raise ValueError(f"malformed killinfo event: expected at least 6 values, got {len(vals)}")

    def kb(i: int, what: str) -> int | None:
        return _size(vals[i].split(".")[0], what) if i < len(vals) else None
    return {"name": f"pid {vals[0]}", "pid": _checked_int(vals[0], "the pid", 0, PID_MAX),
            "adj": _checked_int(vals[2], "oom_adj", ADJ_MIN, ADJ_MAX),
            "rss_kb": _size(vals[4], "TaskSize"), "swap_kb": kb(29, "TaskSwapSize") or 0,
            "reason": f"kill_reason {vals[5]}", "mem_free_kb": kb(6, "MemFree"),
            "swap_free_kb": kb(13, "SwapFree")}


def _join_long(lines: list[str]) -> list[str]:
    """logcat -v long: each header line and the message line after it become one -v time line
    (at the message's line number); the header line itself becomes blank."""
    out = list(lines)
    for i, line in enumerate(lines):
        m = _LONG_HEAD.match(line) if line.startswith("[") else None
        if m is None:
            continue
        j = next((k for k in range(i + 1, min(i + 3, len(lines))) if lines[k].strip()), None)
        if j is not None and not _LONG_HEAD.match(lines[j]):
            out[j] = f"{m.group('ts')} {m.group('prio2')}/{m.group('tag2')}: {lines[j]}"
            out[i] = ""
    return out


def _merge_killinfo(raws: list[_Raw]) -> list[_Raw]:
    """A killinfo event and the lmkd kill line of the same pid are one kill: the line's, with
    the event's memory state. An event with no line (logcat -b events alone) is a kill."""
    lines = {r.pid: r for r in raws if r.kind == "lmkd" and r.pid is not None}
    out = []
    for r in raws:
        if r.kind == "killinfo" and r.pid in lines:
            line = lines[r.pid]
            line.mem_free_kb, line.swap_free_kb = r.mem_free_kb, r.swap_free_kb
            if not line.swap_kb and r.swap_kb:
                line.swap_kb = r.swap_kb
            continue
        out.append(r)
    return out


def _parse_log(lines: list[str], where: str, ratio: float,
               bad: list[Malformed] | None = None) -> Trace:
    raws: list[_Raw] = []
    skipped = 0
    if any(ln.startswith("[ ") for ln in lines[:2000]):
        lines = _join_long(lines)
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if _is_comment(line):      # a header may quote a kill line; no real log line starts "#"
            skipped += 1
            continue
        # Fast path: almost every line of a logcat lacks all three markers.
        if ("Kill '" not in line and "Reclaim '" not in line and "Killed process" not in line
                and "killinfo" not in line):
            skipped += 1
            continue
        try:
            raw = _log_kill(line, n, where, ratio)
        except InputError as e:
            _skip_or_raise(e, bad, n, line)
            continue
        if raw is None:
            skipped += 1
        else:
            raws.append(raw)
    raws = _merge_killinfo(raws)
    if not raws:
        _all_malformed(where, bad)
        raise InputError(where, None, f"no kill lines found; skipped {skipped} unrelated lines; "
                                      f"{NO_KILLS}")
    times, back = _log_times(raws)
    t0 = times[0]
    kills = tuple(Kill(t_ms=(t - t0) / 1e6, name=r.name, rss_kb=r.rss_kb, swap_kb=r.swap_kb,
                       pid=r.pid, oom_score_adj=r.adj, reason=r.reason, line=r.line,
                       mem_free_kb=r.mem_free_kb, swap_free_kb=r.swap_free_kb)
                  for r, t in zip(raws, times))
    fmt: TraceFormat = "lmkd" if any(r.kind in ("lmkd", "killinfo") for r in raws) else "oom"
    return Trace(format=fmt, kills=kills, skipped=skipped, where=where,
                 malformed=tuple(bad or ()), stepped_back=tuple(back))


def _log_times(raws: list[_Raw]) -> tuple[list[int], list[int]]:
    """Each kill's time in ns on one clock, never decreasing (rules in the module docstring),
    and the lines whose time stepped back (taken as back-to-back)."""
    counts: dict[str, int] = {}
    for r in raws:
        for clock in r.stamps or {}:
            counts[clock] = counts.get(clock, 0) + 1
    if not counts:
        return [0] * len(raws), []
    preference = ("secs", "date", "mmdd")
    clock = max(preference, key=lambda c: (counts.get(c, 0), -preference.index(c)))
    first = next(r.stamps[clock] for r in raws if r.stamps and clock in r.stamps)
    times: list[int] = []
    back: list[int] = []
    prev, year_offset = first, 0
    for r in raws:
        t = (r.stamps or {}).get(clock)
        if t is None:
            t = prev                                     # no time on this clock: back-to-back
        else:
            t += year_offset
            if clock == "mmdd" and t < prev - _HALF_YEAR_NS:
                year_offset += _YEAR_NS                  # 12-31 ... then 01-01: a new year
                t += _YEAR_NS
            if t < prev:                                 # a clock step back: back-to-back
                back.append(r.line)
                t = prev
        times.append(t)
        prev = t
    return times, back


# ---------------------------------------------------------------------------------------------
# CSV and JSON Lines

_TIME_KEYS = {"time_ms": 1.0, "time_s": 1000.0, "time": 1000.0}    # key -> ms per unit
_REQUIRED = ("name", "rss_kb", "swap_kb")
_OPTIONAL = ("pid", "oom_score_adj", "reason")
_KNOWN = (*_TIME_KEYS, *_REQUIRED, *_OPTIONAL)
_HEADER_FORM = "a header like time_ms,name,rss_kb,swap_kb[,pid,oom_score_adj,reason]"
_IDENT_CELL = re.compile(r"[A-Za-z_][A-Za-z0-9_ ]{0,63}", _A)
_NUMBER = re.compile(r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:[eE][+-]?[0-9]{1,3})?",
                     _A)


def _looks_like_csv_header(first: str) -> bool:
    cells = [c.strip().lower() for c in first.split(",")]
    return (len(cells) >= 2 and all(_IDENT_CELL.fullmatch(c) for c in cells)
            and any(c in _KNOWN or c.startswith(("time", "rss", "swap")) for c in cells))


def _time_ms(value: float, key: str) -> float:
    ms = value * _TIME_KEYS[key]
    if not math.isfinite(ms) or abs(ms) > MAX_TIME_MS:
        raise ValueError(f"{key}: expected a finite time within about 300 years, got {value!r}")
    return ms


def _data_lines(lines: list[str], seen: list[int]) -> Iterator[str]:
    """The lines that are neither blank nor comments; appends each one's number to ``seen``."""
    for n, line in enumerate(lines, start=1):
        if line.strip() and not _is_comment(line):
            seen.append(n)
            yield line


def _parse_csv(lines: list[str], where: str, bad: list[Malformed] | None = None) -> list[_Raw]:
    seen: list[int] = []
    reader = csv.reader(_data_lines(lines, seen), skipinitialspace=True, strict=True)

    def next_row() -> tuple[int, list[str]] | None:
        start = len(seen)
        try:
            row = next(reader)
        except StopIteration:
            return None
        except csv.Error as e:
            raise _err(where, seen[-1] if seen else 1, f"bad CSV: {e}") from None
        return seen[start], row

    head = next_row()
    assert head is not None                   # the caller saw a header line
    hline, header = head
    columns = [c.strip().lower() for c in header]
    dup = sorted({c for c in columns if columns.count(c) > 1})
    if dup:
        raise _err(where, hline, f"column {dup[0]} appears twice; expected {_HEADER_FORM}")
    times = [c for c in columns if c in _TIME_KEYS]
    if len(times) != 1:
        got = "none" if not times else " and ".join(times)
        raise _err(where, hline, f"expected exactly one time column (time_ms, time_s or time), "
                                 f"got {got}; expected {_HEADER_FORM}")
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise _err(where, hline, f"missing column {', '.join(missing)}; expected {_HEADER_FORM}, "
                                 f"got {_show(','.join(columns), 80)}")
    index = {c: i for i, c in enumerate(columns)}

    raws: list[_Raw] = []
    while (item := next_row()) is not None:
        n, row = item
        if len(row) != len(columns):
            _skip_or_raise(_err(where, n, f"expected {len(columns)} cells as in the header, got "
                                          f"{len(row)}"), bad, n, ",".join(row))
            continue
        cell = {c: row[i].strip() for c, i in index.items()}
        try:
            raws.append(_csv_record(cell, times[0], n))
        except ValueError as e:
            _skip_or_raise(_err(where, n, str(e)), bad, n, ",".join(row))
    return raws


def _csv_record(cell: dict[str, str], tkey: str, n: int) -> _Raw:
    def opt_int(key: str, lo: int, hi: int) -> int | None:
        if not cell.get(key):
            return None
        try:
            return _checked_int(cell[key], key, lo, hi)
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None

    def size(key: str) -> int:
        try:
            return _size(cell[key], "a size")
        except ValueError as e:
            raise ValueError(f"{key}: {e}") from None

    t = cell[tkey]
    if not _NUMBER.fullmatch(t):
        raise ValueError(f"{tkey}: expected a number, got {_show(t)}")
    if not cell["name"]:
        raise ValueError("name: expected a process name, got an empty cell")
    return _Raw(line=n, name=cell["name"], rss_kb=size("rss_kb"), swap_kb=size("swap_kb"),
                pid=opt_int("pid", 0, PID_MAX), adj=opt_int("oom_score_adj", ADJ_MIN, ADJ_MAX),
                reason=cell.get("reason") or None, kind="table", t_ms=_time_ms(float(t), tkey))


def _parse_jsonl(lines: list[str], where: str,
                 bad: list[Malformed] | None = None) -> list[_Raw]:
    raws: list[_Raw] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip() or _is_comment(line):
            continue
        try:
            raws.append(_jsonl_line(line, n, where))
        except InputError as e:
            _skip_or_raise(e, bad, n, line)
    return raws


def _jsonl_line(line: str, n: int, where: str) -> _Raw:
    """One JSON Lines record, or its InputError."""
    try:
        rec = json.loads(line)
    except RecursionError:                 # "[[[[..." deeper than the interpreter's stack
        raise _err(where, n, "expected one JSON object per line, got nesting too deep"
                   ) from None
    except ValueError as e:                # JSONDecodeError, or an int of > 4300 digits
        raise _err(where, n, f"expected one JSON object per line: {e}") from None
    if not isinstance(rec, dict):
        raise _err(where, n, f"expected a JSON object, got {type(rec).__name__}")
    try:
        return _json_record(rec, n)
    except ValueError as e:
        raise _err(where, n, str(e)) from None


def _json_record(rec: dict[str, Any], n: int) -> _Raw:
    def whole(key: str, lo: int, hi: int, what: str, optional: bool = False) -> int | None:
        v = rec.get(key)
        if v is None and optional:
            return None
        if key not in rec:
            raise ValueError(f"{key}: missing; expected {what}")
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"{key}: expected {what} as a JSON integer, "
                             f"got {_show(json.dumps(v))}")
        if not lo <= v <= hi:
            shown = SIZE_RANGE if hi == MAX_KB else f"{lo}..{hi}"
            raise ValueError(f"{key}: expected {what} in {shown}, got {v}")
        return v

    tkeys = [k for k in _TIME_KEYS if k in rec]
    if len(tkeys) != 1:
        got = "none" if not tkeys else " and ".join(tkeys)
        raise ValueError(f"expected exactly one time key (time_ms, time_s or time), got {got}")
    t = rec[tkeys[0]]
    if isinstance(t, bool) or not isinstance(t, (int, float)):
        raise ValueError(f"{tkeys[0]}: expected a number, got {_show(json.dumps(t))}")
    name = rec.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {_show(json.dumps(name))}")
    reason = rec.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError(f"reason: expected a string or null, got {_show(json.dumps(reason))}")
    rss = whole("rss_kb", 0, MAX_KB, "a size in kB")
    swap = whole("swap_kb", 0, MAX_KB, "a size in kB")
    assert rss is not None and swap is not None
    return _Raw(line=n, name=name, rss_kb=rss, swap_kb=swap,
                pid=whole("pid", 0, PID_MAX, "a pid", optional=True),
                adj=whole("oom_score_adj", ADJ_MIN, ADJ_MAX, "oom_score_adj", optional=True),
                reason=reason or None, kind="table", t_ms=_time_ms(float(t), tkeys[0]))


def _finish_table(fmt: TraceFormat, raws: list[_Raw], where: str,
                  bad: list[Malformed] | None = None) -> Trace:
    if not raws:
        _all_malformed(where, bad)
        kind = "rows after the CSV header" if fmt == "csv" else "records in the JSON Lines trace"
        raise InputError(where, None, f"no kill {kind}; expected one kill per line")
    ordered = sorted(raws, key=lambda r: r.t_ms)      # stable: equal times keep file order
    t0 = ordered[0].t_ms
    kills = tuple(Kill(t_ms=r.t_ms - t0, name=r.name, rss_kb=r.rss_kb, swap_kb=r.swap_kb,
                       pid=r.pid, oom_score_adj=r.adj, reason=r.reason, line=r.line)
                  for r in ordered)
    return Trace(format=fmt, kills=kills, skipped=0, where=where, malformed=tuple(bad or ()))
