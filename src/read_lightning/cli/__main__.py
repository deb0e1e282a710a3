"""``python -m read_lightning.cli``: the same as ``read-train``."""

import sys

from read_lightning.cli import main

sys.exit(main())
