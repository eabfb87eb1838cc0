"""One input of an estimate's sample, in a fresh interpreter, as a Batch worker would run it:
``python -m batchbook.functions.sampler RESULT`` reads the pickled (function, args, kwargs)
on stdin, runs it and writes how long it took (and how it ended) to RESULT as JSON. Its
peak memory is the process's, which the parent reads when it ends (os.wait4)."""

from __future__ import annotations

import json
import pickle
import sys
import time


def main() -> int:
    began = time.perf_counter()
    func, args, kwargs = pickle.loads(sys.stdin.buffer.read())
    loaded = time.perf_counter()
    error = None
    try:
        func(*args, **kwargs)
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"[:500]
    ended = time.perf_counter()
    with open(sys.argv[1], "w") as out:
        json.dump({"start": loaded - began, "seconds": ended - loaded, "error": error}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
