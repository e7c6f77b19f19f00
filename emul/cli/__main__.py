"""``python -m emul.cli``: the same as ``emul``."""
import sys

from emul.cli.main import main

sys.exit(main())
