"""Every third-party dependency of every distribution caps the next major version.

A new major of Sanic, redis-py, msgspec, cryptography, asyncpg or SQLAlchemy may change
what the library relies on (some of it internals used for speed): a release must be
tested against it before users get it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
#: Our own distributions are pinned exactly (``==``): they ship together.
OWN = re.compile(r"^sanic-cookies(-\w+)?(\[[^\]]*\])?==")


def _requirements() -> list[tuple[str, str]]:
    found = []
    for pyproject in sorted(PACKAGES.glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        lists = [project.get("dependencies", [])]
        lists += project.get("optional-dependencies", {}).values()
        found += [(pyproject.parent.name, req) for reqs in lists for req in reqs]
    return found


REQUIREMENTS = _requirements()


def test_every_distribution_is_found() -> None:
    assert {name for name, _ in REQUIREMENTS} >= {
        "core",
        "backend-redis",
        "backend-postgres",
        "backend-cookie",
    }


@pytest.mark.parametrize(("package", "requirement"), REQUIREMENTS)
def test_third_party_requirements_have_an_upper_bound(package: str, requirement: str) -> None:
    if OWN.match(requirement):
        return
    assert "<" in requirement, f"{package}: {requirement!r} needs an upper bound (<next major)"
