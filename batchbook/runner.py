"""``python -m batchbook.runner <store url> <run id>``: run one chunk of a map on a worker."""

import sys

from batchbook.functions.worker import main

if __name__ == "__main__":
    sys.exit(main())
