"""Helper processes for the tests (started with ``python -m tests.helpers.<name>``)."""
