"""The compiled clock never reads a register that traps in user space.

``read_clock`` (emul/kernel/atomics.py) emits ``llvm.readcyclecounter``. On x86-64 that is
``rdtsc``. On aarch64 it must be a read of CNTVCT_EL0 (the generic timer's virtual count, which
Linux lets EL0 read): older LLVMs lowered it to PMCCNTR_EL0, the PMU cycle counter, whose read
from user space traps (SIGILL) unless the kernel enabled PMUSERENR_EL0, which Linux does not.

These tests run anywhere: numba's IR for small functions that call read_clock is retargeted to
aarch64-unknown-linux-gnu and compiled to assembly with llvmlite, without running it. A
toolchain upgrade that changes the lowering fails here, on any machine, before it can SIGILL on
a board (`make arm64-check` runs the compiled code itself, under emulation).
"""
from __future__ import annotations

import platform
import re

import llvmlite.binding as llvm
import pytest
from numba import njit, types

from emul.kernel import clock
from emul.kernel.atomics import read_clock

AARCH64 = "aarch64-unknown-linux-gnu"
# generic, the RK3588's two cores, a server core: a CPU-specific lowering would show up here.
AARCH64_CPUS = ["generic", "cortex-a55", "cortex-a76", "neoverse-n1"]


@njit(_nrt=False)
def _now() -> int:
    return read_clock()


_delay = njit(_nrt=False)(clock.delay_ticks.py_func)   # the busy-wait loop, read_clock twice
_clock_now = njit(_nrt=False)(clock.clock_now.py_func)


def _compiled():
    """(name, dispatcher, signature) of each compiled function under test."""
    out = []
    for name, fn, sig in [("read_clock", _now, ()), ("clock_now", _clock_now, ()),
                          ("delay_ticks", _delay, (types.int64,))]:
        fn.compile(sig)
        out.append((name, fn, fn.signatures[-1]))
    return out


def _for_aarch64(ir_text: str, tm) -> "llvm.ModuleRef":
    # numba's IR names the host's triple and data layout; function attributes may name the
    # host CPU and its features, which mean nothing to another target.
    ir_text = re.sub(r'\s*"target-(cpu|features)"="[^"]*"', "", ir_text)
    mod = llvm.parse_assembly(ir_text)
    mod.triple = AARCH64
    mod.data_layout = str(tm.target_data)
    mod.verify()
    return mod


@pytest.fixture(scope="module")
def aarch64_target():
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    try:
        return llvm.Target.from_triple(AARCH64)
    except RuntimeError as e:      # an llvmlite built without the AArch64 backend
        pytest.skip(f"llvmlite has no AArch64 target: {e}")


@pytest.mark.parametrize("cpu", AARCH64_CPUS)
def test_aarch64_clock_reads_cntvct_el0(aarch64_target, cpu: str) -> None:
    tm = aarch64_target.create_target_machine(cpu=cpu, opt=3)
    for name, fn, sig in _compiled():
        ir_text = fn.inspect_llvm(sig)
        # llvmlite cannot assemble another target's inline asm (LLVM aborts the process), so
        # an inline-asm read_clock needs this test changed to check the IR's asm string.
        assert not re.search(r"\basm\b", ir_text), f"{name}: inline asm; update this test"
        assert "llvm.readcyclecounter" in ir_text, name
        asm = tm.emit_assembly(_for_aarch64(ir_text, tm)).lower()
        reads = re.findall(r"\bmrs\s+\w+,\s*(\w+)", asm)
        assert "pmccntr_el0" not in asm, f"{name} ({cpu}): reads PMCCNTR_EL0, which traps at EL0"
        assert reads and set(reads) == {"cntvct_el0"}, f"{name} ({cpu}): registers read: {reads}"


def test_host_clock_instruction() -> None:
    """What this machine actually compiled (numba's host CPU and features)."""
    machine = platform.machine()
    for name, fn, sig in _compiled():
        asm = fn.inspect_asm(sig).lower()
        if machine == "x86_64":
            assert "rdtsc" in asm, name
        elif machine == "aarch64":
            assert "cntvct_el0" in asm and "pmccntr" not in asm, name
        else:
            pytest.skip(f"no expectation for {machine}")
