"""Byte sizes as people write them in scenario files: ``256M``, ``1G``, ``4K``, ``64MiB``, ``1.5G``.

Units are binary (K = 1024) and case-insensitive, with an optional ``B`` or ``iB`` after the
unit (``4k``, ``4KB``, ``4KiB`` all mean 4096). A plain integer, or a string of digits, is a
count of bytes. A size must come to a whole number of bytes (``1.5G`` does, ``1.3K`` does not).

The ``parse_*`` functions raise :class:`~emul.errors.InputError` naming the file and key. The
lower-level ``size_bytes``/``classify_count_or_size`` raise :class:`SizeError`, a
:class:`ValueError` carrying the same ``expected ..., got ...`` text, for use inside validators.
"""
from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any, Literal

from emul.errors import InputError

UNITS: dict[str, int] = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
MAX_SIZE = (1 << 63) - 1   # anything larger does not fit the int64 counters downstream
MAX_COUNT = (1 << 63) - 1

SIZE_EXPECTED = "expected a size like 256M or 1G"
COUNT_OR_SIZE_EXPECTED = "expected a slot count or a size like 64M"

# At most 20 digits either side of the point: keeps int()/Fraction() cheap and in range.
_SIZE_RE = re.compile(
    r"\s*(?P<num>[0-9]{1,20}(?:\.[0-9]{1,20})?|\.[0-9]{1,20})\s*(?P<unit>[KMGT])?(?P<suffix>I?B)?\s*",
    re.IGNORECASE,
)
_DIGITS_RE = re.compile(r"\s*[0-9]{1,20}\s*")


class SizeError(ValueError):
    """A bad size; ``str(err)`` is the whole ``expected ..., got ...`` text."""

    def __init__(self, message: str, reason: Literal["form", "fraction", "range"]) -> None:
        super().__init__(message)
        self.message, self.reason = message, reason


def show_value(value: Any) -> str:
    """The offending value as a user would recognise it in a YAML file: ``"lots"``, ``-1``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 200 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        shown = json.dumps(text, ensure_ascii=False)
        return shown if shown.isprintable() else json.dumps(text)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (set, frozenset)):
        return "a set"
    return f"a {type(value).__name__}"


def format_size(nbytes: int) -> str:
    """The shortest exact spelling: 268435456 -> ``256M``, 1610612736 -> ``1536M``, 4097 -> ``4097``."""
    nbytes = int(nbytes)
    if nbytes < 0:
        return "-" + format_size(-nbytes)
    for unit in ("T", "G", "M", "K"):
        mult = UNITS[unit]
        if nbytes and nbytes % mult == 0:
            return f"{nbytes // mult}{unit}"
    return str(nbytes)


def _string_bytes(text: str) -> Fraction | None:
    """The exact byte count a size string spells, or None if it is not a size."""
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        return None
    unit, suffix = match["unit"], match["suffix"]
    if suffix and suffix.upper() == "IB" and not unit:
        return None
    return Fraction(match["num"]) * (UNITS[unit.upper()] if unit else 1)


def size_bytes(value: Any, *, minimum: int = 1, maximum: int = MAX_SIZE) -> int:
    """Bytes from an int or a size string; raises :class:`SizeError` (a ValueError)."""
    got = show_value(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise SizeError(f"{SIZE_EXPECTED}, got {got}", "form")
    if isinstance(value, int):
        exact = Fraction(value)
    else:
        parsed = _string_bytes(value)
        if parsed is None:
            raise SizeError(f"{SIZE_EXPECTED}, got {got}", "form")
        exact = parsed
    if exact.denominator != 1:
        raise SizeError(f"expected a whole number of bytes, got {got} ({float(exact):g} bytes)", "fraction")
    nbytes = int(exact)
    if nbytes < minimum:
        if minimum == 1:
            raise SizeError(f"expected a size greater than zero, got {got}", "range")
        raise SizeError(f"expected a size of at least {format_size(minimum)}, got {got}", "range")
    if nbytes > maximum:
        raise SizeError(f"expected a size of at most {format_size(maximum)}, got {got}", "range")
    return nbytes


def classify_count_or_size(value: Any) -> tuple[Literal["slots", "bytes"], int]:
    """``("slots", n)`` for a count (an int or a string of digits), ``("bytes", n)`` for a size.

    Raises :class:`SizeError`. Use :func:`count_or_size` to turn bytes into slots.
    """
    got = show_value(value)
    if isinstance(value, str) and _DIGITS_RE.fullmatch(value):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise SizeError(f"expected a slot count of at least 1, got {got}", "range")
        if value > MAX_COUNT:
            raise SizeError(f"expected a slot count of at most {MAX_COUNT}, got {got}", "range")
        return "slots", value
    if not isinstance(value, str):
        raise SizeError(f"{COUNT_OR_SIZE_EXPECTED}, got {got}", "form")
    try:
        return "bytes", size_bytes(value)
    except SizeError as err:
        if err.reason == "form":
            raise SizeError(f"{COUNT_OR_SIZE_EXPECTED}, got {got}", "form") from None
        raise


def count_or_size(value: Any, *, page_size: int) -> tuple[int, int | None]:
    """``(slots, None)`` for a count, ``(nbytes // page_size, nbytes)`` for a size; raises SizeError."""
    kind, n = classify_count_or_size(value)
    if kind == "slots":
        return n, None
    return slots_from_bytes(n, page_size=page_size, got=show_value(value)), n


def slots_from_bytes(nbytes: int, *, page_size: int, got: str) -> int:
    """Whole slots in ``nbytes``; raises :class:`SizeError` if that is less than one page."""
    if nbytes < page_size:
        raise SizeError(
            f"expected a slot count or a size of at least one page ({format_size(page_size)}), got {got}",
            "range",
        )
    return nbytes // page_size


def parse_size(value: Any, *, where: str, key: str, minimum: int = 1) -> int:
    """Bytes from an int (bytes) or a string like ``256M``; raises InputError(where, key, ...)."""
    try:
        return size_bytes(value, minimum=minimum)
    except SizeError as err:
        raise InputError(where, key, err.message) from None


def parse_count_or_size(value: Any, *, page_size: int, where: str, key: str) -> tuple[int, int | None]:
    """A GC cap: an int is a slot count -> ``(slots, None)``; a size string -> ``(bytes // page_size, bytes)``."""
    try:
        return count_or_size(value, page_size=page_size)
    except SizeError as err:
        raise InputError(where, key, err.message) from None
