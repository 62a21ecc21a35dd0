"""Every code example in README.md and docs/*.md runs (rules: docs_runner.py)."""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from docs_runner import (
    DOC_FILES,
    ROOT,
    Block,
    CliCommand,
    DocError,
    all_blocks,
    cli_commands,
    drive,
    parse_script,
    python_blocks,
    smoke,
)
from sanic import Sanic

from sanic_cookies import BackendNotFound, backend_from_url

BLOCKS = python_blocks()
COMMANDS = cli_commands()


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _unavailable(message: str) -> None:
    if _in_ci():
        pytest.fail(f"{message} (CI=true: every docs example must run)")
    pytest.skip(message)


def _require_backend(url: str, **options: Any) -> None:
    try:
        backend_from_url(url, **options)
    except BackendNotFound as exc:
        _unavailable(str(exc))


def _setup_requirements(block: Block, request: pytest.FixtureRequest) -> dict[str, str]:
    """Check what the block needs; return URL rewrites ({"redis"|"postgres": test URL})."""
    rewrites: dict[str, str] = {}
    needs = set()
    for b in _chain(block):
        needs |= b.requires
    if "redis" in needs:
        url = request.getfixturevalue("redis_url")
        _require_backend(url)
        prefix = request.getfixturevalue("docs_redis_prefix")
        rewrites["redis"] = _with_query(url, {"prefix": prefix})
    if "postgres" in needs:
        dsn = request.getfixturevalue("postgres_dsn")
        _require_backend(dsn)
        rewrites["postgres"] = request.getfixturevalue("docs_database")
    if "cookie" in needs:
        keys = [base64.urlsafe_b64encode(os.urandom(32)).decode() for _ in range(2)]
        _require_backend("cookie://", keys=keys)
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setenv("SESSION_KEYS", ",".join(keys))
    return rewrites


def _with_query(url: str, forced: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(forced)
    return urlunsplit(parts._replace(query=urlencode(query)))


_URLS = {
    "redis": re.compile(r"""rediss?://[^\s"'`]*"""),
    "postgres": re.compile(r"""postgres(?:ql)?(?:\+asyncpg)?://[^\s"'`]*"""),
}


def _rewrite(code: str, rewrites: dict[str, str]) -> str:
    """Point the example's server URLs at the test servers.

    The example's scheme and query options are kept; host, credentials and database
    come from the test server, and the options in the rewrite (a fresh key prefix or
    schema) win.
    """
    for kind, target in rewrites.items():
        test = urlsplit(target)

        def replace(match: re.Match[str], test: SplitResult = test) -> str:
            shown = urlsplit(match.group(0))
            query = dict(parse_qsl(shown.query))
            query.update(parse_qsl(test.query))
            return urlunsplit(
                (shown.scheme, test.netloc, test.path, urlencode(query), shown.fragment)
            )

        code = _URLS[kind].sub(replace, code)
    return code


@pytest.fixture(scope="session")
def docs_redis_prefix(redis_url: str, redis_key_prefix: str) -> Iterator[str]:
    """A key prefix of the examples' own; their keys are deleted after the run."""
    prefix = redis_key_prefix + "docs:"
    yield prefix
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session")
def docs_database(postgres_dsn: str, run_id: str) -> Iterator[str]:
    """The DSN of a database of the examples' own, created for this run and dropped after.

    A whole database (not a schema) so that examples may create tables wherever their
    code says, SQLAlchemy metadata included, without touching the shared test database.
    """
    asyncpg = pytest.importorskip("asyncpg")
    name = f"sctest_docs_{run_id}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(postgres_dsn)._replace(path=f"/{name}"))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _chain(block: Block) -> list[Block]:
    chain = [block]
    while "continue" in chain[0].markers:
        assert chain[0].previous is not None
        chain.insert(0, chain[0].previous)
    return chain


def _apps(namespace: dict[str, Any], block: Block) -> list[Any]:
    name = block.markers.get("app")
    if name:
        app = namespace.get(name)
        assert isinstance(app, Sanic), f"{block.id}: <!-- app: {name} --> is not a Sanic app"
        return [app]
    apps = [v for v in namespace.values() if isinstance(v, Sanic)]
    unique = list({id(a): a for a in apps}.values())
    if len(unique) > 1 and block.script:
        raise DocError(f"{block.id}: several apps and a check script: add <!-- app: NAME -->")
    return unique


def _run_test_functions(namespace: dict[str, Any], block: Block) -> None:
    """Call the ``test_*`` functions the block itself defines, as pytest would."""
    code = compile(block.code, block.id, "exec")
    for name in code.co_names:
        func = namespace.get(name)
        if name.startswith("test_") and inspect.isfunction(func):
            result = func()
            if inspect.iscoroutine(result):
                asyncio.run(result)


@pytest.fixture(autouse=True)
def _fresh_sanic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Sanic.test_mode = True
    Sanic._app_registry.clear()


@pytest.fixture(autouse=True)
def _library_log_level() -> Iterator[None]:
    # docs/errors-and-logging.md sets the library logger to INFO: that must not reach
    # the tests that run after it (a test counting the library's log lines saw an INFO one).
    logger = logging.getLogger("sanic_cookies")
    level = logger.level
    yield
    logger.setLevel(level)


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_python_example(block: Block, request: pytest.FixtureRequest) -> None:
    if "fragment" in block.markers:
        assert block.markers["fragment"], f"{block.id}: say why the fragment cannot run"
        compile(block.code, block.id, "exec")
        return
    rewrites = _setup_requirements(block, request)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        _execute(block, rewrites)
    # An example must not teach a pattern the library warns about.
    noisy = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert not noisy, f"{block.id}: the example raises RuntimeWarning(s): {noisy}"


def _execute(block: Block, rewrites: dict[str, str]) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for b in _chain(block):
        # dont_inherit: compiled as a user's module is, not under this file's
        # `from __future__ import annotations` (msgspec resolves string annotations
        # through sys.modules, where the example's namespace is not).
        code = compile(_rewrite(b.code, rewrites), b.id, "exec", dont_inherit=True)
        exec(code, namespace)
    _run_test_functions(namespace, block)
    apps = _apps(namespace, block)
    if block.script is not None:
        assert apps, f"{block.id}: a check script but no Sanic app"
        steps = parse_script(block.script, block.id)
        asyncio.run(drive(apps[0], steps, block.id))
    else:
        for app in apps:
            if app.router.routes:
                asyncio.run(smoke(app, block.id))


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.block.id} {c.line}" for c in COMMANDS])
def test_cli_example(command: CliCommand, request: pytest.FixtureRequest) -> None:
    rewrites = _setup_requirements(command.block, request)
    argv = [_rewrite(arg, rewrites) for arg in command.argv]
    done = subprocess.run(
        [sys.executable, "-m", "sanic_cookies", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == command.exit_code, (
        f"{command.block.id}: `{command.line}` exited {done.returncode}\n{done.stderr}"
    )


def test_examples_exist_and_fragments_are_rare() -> None:
    assert len(BLOCKS) >= 10, f"only {len(BLOCKS)} Python examples found"
    fragments = [b.id for b in BLOCKS if "fragment" in b.markers]
    assert len(fragments) * 10 <= len(BLOCKS), f"too many fragments: {fragments}"


def test_every_check_script_parses() -> None:
    for block in all_blocks():
        if block.script is not None:
            assert block.is_python, f"{block.id}: a check script after a non-Python block"
            assert parse_script(block.script, block.id), f"{block.id}: empty check script"


def test_every_page_is_linked_from_the_readme() -> None:
    """README.md → docs/index.md → each page: nothing in docs/ is an orphan."""
    link = re.compile(r"\]\(((?:\.\./|\./)?(?:docs/)?[\w./-]+\.md)(?:#[\w-]*)?\)")
    reached: set[Path] = set()
    todo = [ROOT / "README.md"]
    while todo:
        page = todo.pop()
        if page in reached or not page.is_file():
            continue
        reached.add(page)
        for target in link.findall(page.read_text(encoding="utf-8")):
            todo.append((page.parent / target).resolve())
    missing = [p.name for p in DOC_FILES if p.resolve() not in reached]
    assert not missing, f"pages not reachable from README.md: {missing}"


def test_relative_links_resolve() -> None:
    link = re.compile(r"\]\((?!https?://|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)")
    broken = []
    for page in DOC_FILES:
        for target in link.findall(page.read_text(encoding="utf-8")):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert not broken, f"broken links: {broken}"
