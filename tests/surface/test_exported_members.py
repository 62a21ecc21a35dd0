"""The public surface of every distribution: what each public module exports.

Modelled on httpx's ``tests/test_exported_members.py``. The exported names
(``__all__``) of each public module are compared with the checked-in list
``exported_members.json``: adding, renaming or removing a public name is a
decision, so it fails here until the list (and the docs) are updated with it.
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import pytest

EXPECTED: dict[str, list[str]] = json.loads(
    (Path(__file__).with_name("exported_members.json")).read_text()
)


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_exported_members_are_the_planned_ones(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = sorted(module.__all__)
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ repeats a name"
    assert exported == EXPECTED[module_name], (
        f"{module_name}.__all__ changed: added {sorted(set(exported) - set(EXPECTED[module_name]))}"
        f", removed {sorted(set(EXPECTED[module_name]) - set(exported))}. If planned, update "
        "tests/surface/exported_members.json and the docs."
    )


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_every_exported_name_exists_and_is_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert not name.startswith("_"), f"{module_name} exports the private name {name}"
        value = getattr(module, name)  # raises if __all__ names something missing
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{module_name}.{name} has no docstring"


def test_every_public_module_is_listed() -> None:
    # A public (not underscored) module added to a distribution belongs in the list.
    root = Path(__file__).parents[2] / "packages"
    found = set()
    for path in root.glob("*/src/sanic_cookies/**/*.py"):
        rel = path.as_posix().split("/src/", 1)[1].removesuffix(".py").split("/")
        if rel[-1] == "__init__":
            rel = rel[:-1]
        if rel[-1] == "__main__" or any(p.startswith("_") for p in rel):
            continue
        if rel == ["sanic_cookies", "backends"]:
            continue  # the namespace package
        found.add(".".join(rel))
    assert found == set(EXPECTED)
