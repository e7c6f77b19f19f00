"""The supervisor's checks on what workers send (the processes themselves are exercised by every
real run in tests/test_run.py and tests/test_faults.py)."""
from __future__ import annotations

import pytest

from emul.errors import RunAborted
from emul.harness.supervisor import PHASE_DONE_VERSION, PhaseDone, Usage

GOOD = {"type": "done", "v": PHASE_DONE_VERSION, "seq": 3, "cpu_now": 1, "cpus_allowed": [1],
        "usage": {"cpu_s": 0.5, "wall_s": 0.6, "voluntary": 2, "involuntary": 1,
                  "migrations": None},
        "result": {"early": 4}}


def test_a_phase_result_is_read_into_its_record() -> None:
    done = PhaseDone.from_msg("killer", GOOD)
    assert done.seq == 3 and done.cpu_now == 1 and done.cpus_allowed == [1]
    assert done.usage == Usage(cpu_s=0.5, wall_s=0.6, voluntary=2, involuntary=1, migrations=None)
    assert done.result == {"early": 4}


def test_an_ungated_result_has_no_usage() -> None:
    done = PhaseDone.from_msg("benchpeer", dict(GOOD, usage=None, result=None))
    assert done.usage is None and done.result == {}


@pytest.mark.parametrize("version", [None, 0, PHASE_DONE_VERSION + 1, "1"])
def test_a_result_of_another_version_is_refused_naming_both(version) -> None:
    msg = dict(GOOD, v=version)
    if version is None:
        del msg["v"]
    with pytest.raises(RunAborted, match=f"worker gc0 .*version .*expected {PHASE_DONE_VERSION}"):
        PhaseDone.from_msg("gc0", msg)


@pytest.mark.parametrize("broken", [{"seq": None}, {"cpus_allowed": "all"},
                                    {"usage": {"cpu_s": 1.0}}, {"cpu_now": "here"}])
def test_a_malformed_result_ends_the_run_with_the_worker_named(broken: dict) -> None:
    with pytest.raises(RunAborted, match="worker swapin sent a malformed phase result"):
        PhaseDone.from_msg("swapin", dict(GOOD, **broken))
