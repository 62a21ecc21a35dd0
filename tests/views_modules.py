"""Import a views module written by the test: a module of its own, as an app's views are."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType

__all__ = ["views_module"]


def views_module(tmp_path: Path, source: str) -> ModuleType:
    """Write `source` to a new module under `tmp_path` and import it.

    ``{name}`` in `source` is the module's own (unique) name, for a blueprint's name.
    """
    name = f"views_{uuid.uuid4().hex}"
    path = tmp_path / f"{name}.py"
    path.write_text(source.format(name=name))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
