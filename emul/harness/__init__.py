"""The harness: everything around the emulated kernel that makes a run.

    controller.py  a Group per structural combination; run_groups interleaves their repeats
    plan.py        which workers, pinned where; the arena's geometry
    repeat.py      one repeat step by step (reset, swap-out, measured, drain, audit)
    collect.py     the RepeatRecord (record.py) read from the arena
    sampler.py     the timeline the controller samples during a repeat
    supervisor.py  worker processes: spawn, handshake, phases, health, shutdown (also bench's)
    control.py     the ZeroMQ control plane       arena.py  the /dev/shm arena
    entrypoints.py every compiled entry point, compiled once before workers start
    microbench.py  emul bench's compiled loops    trace.py  trace.json
    chaos.py       emul run --chaos
    signals.py     SIGINT / SIGTERM / SIGHUP: one interrupt, never inside clean-up
    leftovers.py   the sweep of what killed runs left; other emul runs beside this one
"""
