"""``python -m sanic_cookies`` and the ``sanic-cookies`` console script."""

from __future__ import annotations

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
