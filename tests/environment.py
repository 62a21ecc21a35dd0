"""Which optional distributions a test may do without.

The nox sessions install different sets of distributions on purpose: ``core``
installs the core alone, ``redis`` the core and the Redis backend, and so on. A
test that needs a distribution the session left out skips. The sessions that
install everything (``tests``, ``wheels``) set ``SANIC_COOKIES_TEST_ALL=1``;
there a missing distribution is a broken install and the test fails instead.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

ALL_INSTALLED_VAR = "SANIC_COOKIES_TEST_ALL"


def everything_installed() -> bool:
    """True in a session that installs every distribution (a missing one is an error)."""
    return os.environ.get(ALL_INSTALLED_VAR, "") == "1"


def require_module(module: str, distribution: str) -> ModuleType:
    """Import `module` (from `distribution`), or skip / fail the test as the docstring says."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"{module} is not importable ({distribution}): {exc}"
        if everything_installed():
            pytest.fail(f"{message}; {ALL_INSTALLED_VAR}=1 says every distribution is installed")
        pytest.skip(f"{message} (not installed in this nox session)")
