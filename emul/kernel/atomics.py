"""Atomic instructions, a clock and a CPU-relax hint for compiled (numba) code.

Every primitive here is an LLVM instruction emitted through ``numba.extending.intrinsic``:
``cmpxchg`` and ``atomicrmw`` (sequentially consistent) on one element of a shared numpy array,
``llvm.readcyclecounter`` for time (``rdtsc`` on x86-64, a read of ``CNTVCT_EL0`` on aarch64),
and the architecture's spin-wait hint. Futex wait/wake and ``sched_getcpu`` call libc by symbol,
which keeps callers cacheable on disk (a ctypes call would not be).

A plain ``a[i] += 1`` on shared memory is neither atomic nor guaranteed to reach memory inside a
loop: anything other processes read or contend on goes through these functions.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

MACHINE = platform.machine()
_SYS_FUTEX = {"x86_64": 202, "aarch64": 98}.get(MACHINE, 202)
_FUTEX_WAIT, _FUTEX_WAKE = 0, 1


def _element_pointer(context, builder, aryty, ary_value, index_value, index_type):
    ary = context.make_array(aryty)(context, builder, ary_value)
    index = context.cast(builder, index_value, index_type, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, ary, [index], wraparound=False)


def _check_array(arr) -> None:
    if not isinstance(arr, types.Array) or arr.ndim != 1 or not isinstance(arr.dtype, types.Integer):
        raise TypeError("atomics work on 1-d integer arrays")


def _rmw(op: str):
    """Build an intrinsic ``old = atomic <op>(&arr[i], val)``."""

    @intrinsic
    def fetch_op(typingctx, arr, index, value):
        _check_array(arr)
        sig = arr.dtype(arr, index, value)

        def codegen(context, builder, sig, args):
            ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
            val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
            return builder.atomic_rmw(op, ptr, val, "seq_cst")

        return sig, codegen

    return fetch_op


atomic_fetch_add = _rmw("add")
atomic_fetch_sub = _rmw("sub")
atomic_fetch_or = _rmw("or")
atomic_fetch_and = _rmw("and")
atomic_xchg = _rmw("xchg")
atomic_fetch_max = _rmw("max")


@intrinsic
def atomic_cas(typingctx, arr, index, expected, desired):
    """Compare-and-swap ``arr[index]``: returns the old value (success when it equals expected)."""
    _check_array(arr)
    sig = arr.dtype(arr, index, expected, desired)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        exp = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        des = context.cast(builder, args[3], sig.args[3], sig.args[0].dtype)
        pair = builder.cmpxchg(ptr, exp, des, "seq_cst", "seq_cst")
        return builder.extract_value(pair, 0)

    return sig, codegen


@intrinsic
def atomic_load(typingctx, arr, index):
    """A load the compiler may neither hoist out of a loop nor tear (acquire order)."""
    _check_array(arr)
    sig = arr.dtype(arr, index)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        width = sig.args[0].dtype.bitwidth // 8
        return builder.load_atomic(ptr, "seq_cst", width)

    return sig, codegen


@intrinsic
def atomic_store(typingctx, arr, index, value):
    """A store other CPUs see in program order (seq_cst)."""
    _check_array(arr)
    sig = types.void(arr, index, value)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        width = sig.args[0].dtype.bitwidth // 8
        builder.store_atomic(val, ptr, "seq_cst", width)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def read_clock(typingctx):
    """Ticks of the CPU's constant-rate counter (rdtsc / CNTVCT_EL0); see clock.ns_per_tick."""
    sig = types.int64()

    def codegen(context, builder, sig, args):
        fnty = ir.FunctionType(ir.IntType(64), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.readcyclecounter")
        return builder.call(fn, [])

    return sig, codegen


@intrinsic
def cpu_relax(typingctx):
    """The spin-wait hint (x86 ``pause``, arm64 ``yield``): what the kernel's cpu_relax() issues."""
    sig = types.void()

    def codegen(context, builder, sig, args):
        if MACHINE == "x86_64":
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        elif MACHINE == "aarch64":
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(32)]), "llvm.aarch64.hint")
            builder.call(fn, [ir.Constant(ir.IntType(32), 1)])  # HINT #1 = YIELD
        return context.get_dummy_value()

    return sig, codegen


def _futex_call(builder, ptr, op: int, val, timeout_ptr):
    i64 = ir.IntType(64)
    fnty = ir.FunctionType(i64, [i64], var_arg=True)
    fn = cgutils.get_or_insert_function(builder.module, fnty, "syscall")
    addr = builder.ptrtoint(ptr, i64)
    return builder.call(fn, [ir.Constant(i64, _SYS_FUTEX), addr, ir.Constant(i64, op), val,
                             timeout_ptr, ir.Constant(i64, 0), ir.Constant(i64, 0)])


@intrinsic
def futex_wake(typingctx, arr, index, count):
    """FUTEX_WAKE on ``arr[index]`` (an int32 word of shared memory): wakes up to count waiters."""
    if not isinstance(arr, types.Array) or arr.dtype != types.int32:
        raise TypeError("futex words are int32")
    sig = types.int64(arr, index, count)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        n = context.cast(builder, args[2], sig.args[2], types.int64)
        return _futex_call(builder, ptr, _FUTEX_WAKE, n, ir.Constant(ir.IntType(64), 0))

    return sig, codegen


@intrinsic
def futex_wait(typingctx, arr, index, expected, timeout_ns):
    """FUTEX_WAIT on ``arr[index]`` while it holds ``expected``, at most timeout_ns (a real sleep)."""
    if not isinstance(arr, types.Array) or arr.dtype != types.int32:
        raise TypeError("futex words are int32")
    sig = types.int64(arr, index, expected, timeout_ns)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        i64 = ir.IntType(64)
        exp = context.cast(builder, args[2], sig.args[2], types.int64)
        tmo = context.cast(builder, args[3], sig.args[3], types.int64)
        ts = cgutils.alloca_once(builder, ir.LiteralStructType([i64, i64]))
        billion = ir.Constant(i64, 1_000_000_000)
        builder.store(builder.sdiv(tmo, billion), builder.gep(ts, [ir.Constant(ir.IntType(32), 0),
                                                                   ir.Constant(ir.IntType(32), 0)]))
        builder.store(builder.srem(tmo, billion), builder.gep(ts, [ir.Constant(ir.IntType(32), 0),
                                                                   ir.Constant(ir.IntType(32), 1)]))
        return _futex_call(builder, ptr, _FUTEX_WAIT, exp, builder.ptrtoint(ts, i64))

    return sig, codegen


@intrinsic
def sched_yield(typingctx):
    """Give the CPU to another runnable thread (libc sched_yield)."""
    sig = types.int64()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
        return builder.sext(builder.call(fn, []), ir.IntType(64))

    return sig, codegen


@intrinsic
def sched_getcpu(typingctx):
    """The CPU this thread runs on now (libc sched_getcpu)."""
    sig = types.int64()

    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), "sched_getcpu")
        return builder.sext(builder.call(fn, []), ir.IntType(64))

    return sig, codegen


@intrinsic
def count_trailing_zeros(typingctx, word):
    """Index of the lowest set bit (llvm.cttz), as the kernel's __ffs(); undefined for 0."""
    sig = types.int64(word)

    def codegen(context, builder, sig, args):
        val = context.cast(builder, args[0], sig.args[0], types.int64)
        i64 = ir.IntType(64)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, [i64, ir.IntType(1)]), "llvm.cttz.i64")
        return builder.call(fn, [val, ir.Constant(ir.IntType(1), 1)])

    return sig, codegen


@intrinsic
def atomic_store_release(typingctx, arr, index, value):
    """A release store: what an unlock needs (earlier writes are visible first). A plain mov on
    x86-64, stlr on arm64; cheaper than atomic_store's full barrier."""
    _check_array(arr)
    sig = types.void(arr, index, value)

    def codegen(context, builder, sig, args):
        ptr = _element_pointer(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        width = sig.args[0].dtype.bitwidth // 8
        builder.store_atomic(val, ptr, "release", width)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, _nrt=False, inline="always")
def atomic_add_below(arr, index, delta, limit):
    """Add delta unless the sum would pass limit (a cmpxchg loop, as the kernel's
    atomic_add_unless): the counter never overshoots, so no reader sees it above limit.
    Returns the new value, or -1 when it refused."""
    old = atomic_load(arr, index)
    while old + delta <= limit:
        seen = atomic_cas(arr, index, old, old + delta)
        if seen == old:
            return old + delta
        old = seen
    return -1
