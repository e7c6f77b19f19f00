"""Turning a run's results document into what people read, one job per module:

  results   the document (results.json): schema version and history, build(), write()
  summary   the per-variant summary of the repeats and the permutation test
  tables    every rich table of a run (printing them is the command line's)
  verdict   the one-line answer per group
  compare   `emul compare`: several runs side by side
  timeline  pure helpers over a replay's timeline and kills
  io        reading a document back, summary.txt, re-rendering the plots
  plots     the PNG plots;  export  the CSV files

Layering: report imports emul.harness, emul.strategies, emul.kernel, emul.config and
emul.errors, never emul.replay, emul.calibrate, emul.bench or emul.cli (they sit above it).
"""
