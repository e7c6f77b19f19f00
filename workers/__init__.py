"""The emulated kernel's actors, each run as its own process: ``python -m workers.<role>``.

A worker pins itself, attaches the run's arena, loads the compiled paths, reports ready, and then
runs phases when the controller says so, starting on the shared-memory gate. The per-slot work
is all in compiled code (emul.kernel); this package only sequences it.
"""
