"""emul validate: the published record re-run by mechanism (command.py lists the modules)."""
