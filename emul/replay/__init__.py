"""`emul replay`: traces (reading kill logs), plan (the replay's scenario from a trace) and
report (its per-strategy summary, results keys and replay.png). Sits above emul.report.
"""
