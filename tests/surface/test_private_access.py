"""Classes meet through public names: a scan of every distribution's source.

Two rules, checked on the source (``ast``), so a new breach fails here:

* No module reads or writes another object's private member: ``obj._x`` where
  ``obj`` is not ``self`` / ``cls`` / ``super()``. Third-party internals are
  allowed only in the distributions' ``_compat.py`` modules, which hold each
  with a public-API fallback. The few other exceptions are listed in `ALLOWED`,
  each with its reason; an entry no longer needed fails too, so the list shrinks.
* Nothing outside ``packages/core`` imports a private module or name of another
  distribution (``sanic_cookies._errors``, ``from sanic_cookies import _x``):
  what a backend needs is public (see docs/writing-a-backend.md).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parents[2]
SOURCES = sorted(ROOT.glob("packages/*/src/**/*.py"))
FIXTURE_SOURCES = sorted(ROOT.glob("tests/fixtures/*/src/**/*.py"))

_SESSION_REDESIGN = (
    "Session / SessionDict / AuthSession internals, being redesigned as one unit "
    "(issue 15, 'one decision point'); goes when that lands"
)
_STDLIB = "a documented standard-library API whose name starts with an underscore"

#: (path under packages/, expression) -> why it is allowed.
ALLOWED: dict[tuple[str, str], str] = {
    ("core/src/sanic_cookies/_session_dict.py", "sys._getframe"): _STDLIB,
    ("core/src/sanic_cookies/_config.py", "config._checked"): (
        "a classmethod of SessionConfig finishing the instance it just built (same class)"
    ),
    **{
        (f"core/src/sanic_cookies/{path}", expr): _SESSION_REDESIGN
        for path, expr in [
            ("_decorators.py", "auth._login_info"),
            ("testing/_login.py", "auth._issue_login"),
            ("testing/_login.py", "auth._cookie_key"),
        ]
    },
}


def _is_own(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls")
    return (  # super()._x
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _named_access(node: ast.AST) -> tuple[ast.expr, str] | None:
    """``(obj, "_x")`` of ``getattr(obj, "_x", ...)`` (or hasattr / setattr / delattr)."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("getattr", "hasattr", "setattr", "delattr")
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        return None
    return node.args[0], node.args[1].value


def private_accesses(path: Path) -> Iterator[tuple[int, str]]:
    """(line, expression) of each ``obj._x`` in `path` where obj is not self, cls or super().

    ``getattr(obj, "_x")`` (and hasattr, setattr, delattr with a literal name) counts too.
    """
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute):
            obj, name, expr = node.value, node.attr, ast.unparse(node)
        elif (named := _named_access(node)) is not None:
            obj, name = named
            expr = f"{ast.unparse(obj)}.{name}"
        else:
            continue
        if _is_private(name) and not _is_own(obj):
            yield node.lineno, expr


def test_no_class_reads_another_class_private_members() -> None:
    found: dict[tuple[str, str], list[int]] = {}
    for path in SOURCES:
        rel = path.relative_to(ROOT / "packages").as_posix()
        if path.name == "_compat.py":
            continue  # third-party internals live there, each with a fallback
        for line, expr in private_accesses(path):
            found.setdefault((rel, expr), []).append(line)
    breaches = {k: v for k, v in found.items() if k not in ALLOWED}
    assert not breaches, "private members read across classes (use a public name): " + "; ".join(
        f"{path}:{lines[0]} {expr}" for (path, expr), lines in sorted(breaches.items())
    )
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, f"allow-list entries no longer needed, remove them: {stale}"


def test_only_the_compat_modules_use_third_party_private_names() -> None:
    # A private import from sanic or redis (e.g. `from sanic.cookies.request import _unquote`).
    found = []
    for path in SOURCES:
        if path.name == "_compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                top = node.module.split(".")[0]
                private = any(p.startswith("_") for p in node.module.split(".")) or any(
                    a.name.startswith("_") for a in node.names
                )
                if top in ("sanic", "redis", "hiredis") and private:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
    assert not found


#: Third-party attributes without a leading underscore that are internals all the same
#: (undocumented, changed between releases): like private names, only in ``_compat.py``.
THIRD_PARTY_INTERNALS = frozenset({"nodes_manager"})  # redis-py's cluster slot map


def test_undocumented_third_party_attributes_are_used_only_in_the_compat_modules() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}"
        for path in SOURCES
        if path.name != "_compat.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Attribute) and node.attr in THIRD_PARTY_INTERNALS
    ]
    assert not found, found


def _own_package(path: Path) -> str:
    """The dotted package of a distribution file, e.g. ``sanic_cookies.backends.redis``."""
    parts = path.as_posix().split("/src/", 1)[1].split("/")
    return ".".join(parts[:3] if parts[:2] == ["sanic_cookies", "backends"] else parts[:1])


def test_no_module_outside_the_core_imports_a_private_name_of_another_distribution() -> None:
    found = []
    outside_core = [p for p in SOURCES if not p.is_relative_to(ROOT / "packages" / "core")]
    for path in [*outside_core, *FIXTURE_SOURCES]:
        own = _own_package(path)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [(a.name, ()) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [(node.module, tuple(a.name for a in node.names))]
            else:
                continue
            for module, names in modules:
                if not module.startswith("sanic_cookies") or module.startswith(own + "."):
                    continue
                if any(p.startswith("_") for p in module.split(".")) or any(
                    n.startswith("_") for n in names
                ):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {module} {names}")
    assert not found, found


def test_the_scan_sees_a_breach(tmp_path: Path) -> None:
    # A private member of another object is found; self's, cls's and super()'s are not.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f(self, cls, other):\n"
        "    return other._x, self._y, cls._w, super()._z, getattr(other, '_v', 0), "
        "getattr(self, '_u'), getattr(other, '__doc__'), other.__dict__\n"
    )
    assert sorted(expr for _, expr in private_accesses(probe)) == ["other._v", "other._x"]
