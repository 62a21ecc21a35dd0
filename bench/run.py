"""Benchmark sanic-cookies: ``python bench/run.py [--duration S] [--scenarios ...]``.

Run from anywhere; ``python bench/run.py --help`` lists the options (``--targets``, ...).
``--callgrind`` counts instructions per request under valgrind instead (`bench.callgrind`):
steadier than requests/s on a busy machine.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
