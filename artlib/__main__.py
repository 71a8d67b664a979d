"""``python -m artlib``: see :mod:`artlib.cli`."""

import sys

from artlib.cli import main

sys.exit(main())
