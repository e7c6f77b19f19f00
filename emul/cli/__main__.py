"""python -m emul.cli"""
import sys

from emul.cli import main

sys.exit(main())
