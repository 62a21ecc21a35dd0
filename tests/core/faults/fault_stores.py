"""Whether a store kind can be tested here: skip, or fail under ``CI=true``.

A store kind whose distribution is not installed at all (the ``core`` nox
session installs the core alone) is skipped. One that is installed but cannot
be imported (a backend still being written), or whose server is down, is
skipped outside CI and fails under ``CI=true``.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import PackageNotFoundError, distribution
from typing import Any

import pytest
from environment import require_module

_DISTRIBUTIONS = {"redis": "sanic-cookies-redis", "postgres": "sanic-cookies-postgres"}


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(message: str) -> None:
    """Skip, or fail under CI=true."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: every backend pair must be tested)")
    pytest.skip(message)


def backend_module(kind: str) -> Any:
    """The backend module of a store kind, or skip/fail as the module docstring says."""
    dist = _DISTRIBUTIONS[kind]
    try:
        distribution(dist)
    except PackageNotFoundError:
        require_module(f"sanic_cookies.backends.{kind}", dist)  # skips, or fails if required
    try:
        return importlib.import_module(f"sanic_cookies.backends.{kind}")
    except ImportError as exc:
        unavailable(f"{dist} is installed but does not import: {exc}")
