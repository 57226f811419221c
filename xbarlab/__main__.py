"""``python -m xbarlab``: the same command line as ``xbarlab``."""

import sys

from xbarlab.cli import main

sys.exit(main())
