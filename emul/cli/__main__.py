"""``python -m emul.cli``: the same as ``emul``."""
import sys

from emul.cli import main

sys.exit(main())
