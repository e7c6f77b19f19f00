"""``emul calibrate``: the real kernel's zram costs on this machine, as an emul cost profile.

The command is emul/calibrate/command.py (``run_calibrate``); its docstring maps the modules.
Nothing is imported here, so that ``emul`` starts without the calibrate code.
"""
