"""``python -m batchbook``: the ``batchbook`` command."""

import sys

from batchbook.cli import main

sys.exit(main())
