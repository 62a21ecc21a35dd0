"""Sessions for the sanic-cookies monorepo: ``nox -l`` lists them, ``nox`` runs the defaults.

Every session builds a fresh virtualenv (uv when available) and installs the members it
needs in ONE install call, so the exact sibling pins (``sanic-cookies==1.0.0``) resolve to
the local packages and never to the unrelated 0.x releases on PyPI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
VERSION = "1.0.0"

PACKAGES = ROOT / "packages"
CORE = PACKAGES / "core"
BACKENDS = {
    "redis": PACKAGES / "backend-redis",
    "postgres": PACKAGES / "backend-postgres",
    "cookie": PACKAGES / "backend-cookie",
}
ALL_MEMBERS = [CORE, *BACKENDS.values()]
# An out-of-tree backend, installed like a third-party package would be: it proves
# that entry-point discovery and the conformance suite work for outside authors.
DICTSTORE = ROOT / "tests" / "fixtures" / "sanic_cookies_dictstore"
# A second one, on a store every worker shares (a SQLite file) with the core's LeaseLock:
# it proves the cross-process tests of the conformance suite pass for an outside author.
SQLITE = ROOT / "tests" / "fixtures" / "sanic_cookies_sqlite"
# Tells the tests that a missing distribution is a broken install, not a narrower
# session on purpose (see tests/environment.py).
EVERYTHING_INSTALLED = {"SANIC_COOKIES_TEST_ALL": "1"}

# The full suite runs once, in ``tests``. The sessions that prove an install mode
# (wheels, mixed, one backend) run the tests that exercise what they install, and
# leave the slow multi-process, outage, cluster, fuzz and browser tests to ``tests``.
HEAVY_TESTS = [
    "tests/browser",
    "tests/bench",
    "tests/backends/redis/test_redis_multiprocess.py",
    "tests/backends/redis/test_redis_outage.py",
    "tests/backends/redis/test_redis_cluster.py",
    "tests/backends/redis/test_redis_cluster_pipeline.py",
    "tests/backends/redis/test_redis_cluster_failover.py",
    "tests/backends/redis/test_redis_cluster_resharding.py",
    "tests/backends/redis/test_redis_failover.py",
    "tests/backends/postgres/test_multiprocess.py",
    "tests/backends/postgres/test_outage.py",
    "tests/backends/postgres/test_pgbouncer.py",
    "tests/backends/cookie/test_cookie_fuzz.py",
]

# What the wheels session runs against the installed wheels: every distribution's
# conformance suite and its end-to-end path through an app, the out-of-tree backend, and
# every documented example (they import what users import).
WHEEL_TESTS = [
    "tests/core/backends",
    "tests/core/test_roundtrip.py",
    "tests/core/test_third_party_backend.py",
    "tests/core/test_sqlite_fixture.py",
    "tests/core/auth/test_login.py",
    "tests/backends/redis/test_redis_conformance.py",
    "tests/backends/redis/test_redis_round_trips.py",
    "tests/backends/postgres/test_postgres_conformance.py",
    "tests/backends/postgres/test_e2e.py",
    "tests/backends/cookie/test_cookie_conformance.py",
    "tests/backends/cookie/test_cookie_app.py",
    "tests/docs",
]

# Test processes (pytest-xdist). Most of a test's time is spent waiting on a server, a
# subprocess or a socket, so four share two cores well (the full suite: about 20 minutes
# in one process, about 8 in four). ``nox -s tests -- -n 0 tests/...`` runs in one.
# The multi-worker PostgreSQL tests take turns through a file lock (one_fleet_at_a_time in
# tests/backends/postgres/conftest.py): pytest-xdist's ``xdist_group`` has no effect
# under pytest 9 (xdist 3.8 renames ``item._nodeid``, which pytest 9 no longer reads).
PARALLEL = ["-n", "4"]

LINT_PATHS = ["packages", "tests", "noxfile.py", "examples", "bench"]

BACKEND_MODULES = [
    "sanic_cookies.backends.memory",
    *(f"sanic_cookies.backends.{name}" for name in BACKENDS),
]
ENTRY_POINTS = {
    "memory",
    "redis",
    "rediss",
    "redis.cluster",
    "rediss.cluster",
    "redis.sentinel",
    "rediss.sentinel",
    "postgresql",
    "postgres",
    "postgresql.asyncpg",
    "cookie",
}

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.reuse_venv = "no"
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "tests",
    "lint",
    "typecheck",
    "wheels",
    "mixed",
    "core",
    "redis",
    "postgres",
    "cookie",
]


def group(name: str) -> list[str]:
    """Requirements of a PEP 735 dependency group from the root pyproject.toml."""
    return list(nox.project.dependency_groups(PYPROJECT, name))


def editable(*paths: Path) -> list[str]:
    args: list[str] = []
    for path in paths:
        args += ["-e", str(path)]
    return args


def fresh_dir(session: nox.Session, name: str) -> Path:
    path = Path(session.create_tmp()) / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def build_wheels(session: nox.Session, out: Path, *members: Path) -> None:
    for member in members:
        session.run("uv", "build", "--wheel", "--out-dir", str(out), str(member), external=True)


def uninstall(session: nox.Session, *dists: str) -> None:
    if session.venv_backend == "uv":
        session.run("uv", "pip", "uninstall", *dists, external=True)
    else:
        session.run("python", "-m", "pip", "uninstall", "-y", *dists)


def wheel_of(out: Path, dist: str) -> Path:
    (wheel,) = out.glob(f"{dist.replace('-', '_')}-{VERSION}-*.whl")
    return wheel


def check_imports(session: nox.Session, where: dict[str, str], cwd: Path) -> None:
    """Import modules from a directory outside the checkout and check where each came from.

    ``where`` maps a module to ``"site-packages"`` (installed from a wheel) or to a path
    prefix (an editable install from the checkout).
    """
    script = (
        "import importlib, sys\n"
        f"where = {where!r}\n"
        "for mod, expected in where.items():\n"
        "    m = importlib.import_module(mod)\n"
        "    print(f'{mod:36} {m.__file__}')\n"
        "    assert expected in m.__file__, f'{mod} not from {expected}: {m.__file__}'\n"
    )
    with session.chdir(cwd):
        session.run("python", "-c", script, env={"PYTHONPATH": ""})


def run_pytest_dir(session: nox.Session, test_dir: str, *extra: str) -> None:
    """Run pytest on one tests/ sub-directory (or on the session's arguments)."""
    session.run("pytest", *PARALLEL, *extra, *(session.posargs or [test_dir]))


@nox.session
def tests(session: nox.Session) -> None:
    """All four packages editable (one install call) + the whole test suite.

    The Redis backend comes with its ``hiredis`` extra here (the C packer and parser);
    the ``redis`` session tests the pure-Python path.
    """
    session.install(
        *editable(CORE, *(m for m in ALL_MEMBERS if m not in (CORE, BACKENDS["redis"]))),
        "-e",
        f"{BACKENDS['redis']}[hiredis]",
        *editable(DICTSTORE, SQLITE),
        *group("test"),
        *group("browser"),
        *group("otel"),
    )
    session.run("pytest", *PARALLEL, *(session.posargs or ["tests"]), env=EVERYTHING_INSTALLED)


@nox.session
def core(session: nox.Session) -> None:
    """The core alone (with its optional ``otel`` extra): no backend distribution installed."""
    session.install(*editable(CORE, DICTSTORE, SQLITE), *group("test"), *group("otel"))
    run_pytest_dir(session, "tests/core")


def _backend_session(session: nox.Session, name: str) -> None:
    session.install(*editable(CORE, BACKENDS[name]), *group("test"))
    run_pytest_dir(session, f"tests/backends/{name}", *ignore(HEAVY_TESTS))


def ignore(paths: list[str]) -> list[str]:
    return [f"--ignore={path}" for path in paths]


@nox.session
def redis(session: nox.Session) -> None:
    """Core + the Redis backend only (needs Redis at 127.0.0.1:6379)."""
    _backend_session(session, "redis")


@nox.session
def postgres(session: nox.Session) -> None:
    """Core + the PostgreSQL backend only (needs PostgreSQL at 127.0.0.1:5432)."""
    _backend_session(session, "postgres")


@nox.session
def cookie(session: nox.Session) -> None:
    """Core + the encrypted-cookie backend only."""
    _backend_session(session, "cookie")


@nox.session
def wheels(session: nox.Session) -> None:
    """Build all four wheels, install ``sanic-cookies[all]`` from them, test the install.

    Tests run from a copy of tests/ in a temporary directory, so neither the checkout nor
    ``packages/*/src`` is on sys.path: everything is imported from site-packages.
    """
    dist = fresh_dir(session, "dist")
    build_wheels(session, dist, *ALL_MEMBERS, DICTSTORE, SQLITE)
    session.install(
        "--find-links",
        str(dist),
        f"sanic-cookies[all]=={VERSION}",
        "sanic-cookies-dictstore",
        "sanic-cookies-sqlite",
        *group("test"),
        *group("browser"),
        *group("otel"),
    )

    work = fresh_dir(session, "run")
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", work / "pyproject.toml")  # pytest settings
    # tests/docs runs every example of README.md and docs/; tests/browser drives examples/.
    shutil.copy2(ROOT / "README.md", work / "README.md")
    for folder in ("docs", "examples"):
        if (ROOT / folder).is_dir():
            shutil.copytree(ROOT / folder, work / folder)

    check_imports(
        session, {mod: "site-packages" for mod in ["sanic_cookies", *BACKEND_MODULES]}, work
    )
    script = (
        "from importlib.metadata import entry_points\n"
        "names = {ep.name for ep in entry_points(group='sanic_cookies.backends')}\n"
        f"missing = {sorted(ENTRY_POINTS)!r}\n"
        "missing = sorted(set(missing) - names)\n"
        "assert not missing, f'entry points missing: {missing}'\n"
        "print('entry points:', sorted(names))\n"
    )
    with session.chdir(work):
        session.run("python", "-c", script, env={"PYTHONPATH": ""})
        session.run(
            "pytest",
            "-p",
            "no:cacheprovider",
            *PARALLEL,
            *(session.posargs or WHEEL_TESTS),
            # Links point into the checkout (packages/, LICENSE): checked by ``tests``.
            "--deselect=tests/docs/test_docs_examples.py::test_relative_links_resolve",
            env={"PYTHONPATH": "", **EVERYTHING_INSTALLED},
        )


@nox.session
def mixed(session: nox.Session) -> None:
    """Mixed install modes: core wheel + backend editable, then core editable + backend wheel."""
    dist = fresh_dir(session, "dist")
    build_wheels(session, dist, CORE, BACKENDS["redis"])
    outside = fresh_dir(session, "run")
    redis_src = str(BACKENDS["redis"] / "src")

    # 1. core from its wheel, redis backend editable (a .pth entry pointing at its src/).
    session.install(
        str(wheel_of(dist, "sanic-cookies")),
        *editable(BACKENDS["redis"], DICTSTORE),
        *group("test"),
    )
    check_imports(
        session,
        {
            "sanic_cookies": "site-packages",
            "sanic_cookies.backends.memory": "site-packages",
            "sanic_cookies.backends.redis": redis_src,
        },
        outside,
    )
    session.run(
        "pytest",
        "-q",
        *(
            session.posargs
            or [
                "tests/core/test_roundtrip.py",
                "tests/core/backends",
                "tests/core/test_third_party_backend.py",
                "tests/backends/redis/test_redis_conformance.py",
            ]
        ),
    )

    # 2. the other way round: core editable, redis backend from its wheel.
    uninstall(session, "sanic-cookies", "sanic-cookies-redis")
    session.install(*editable(CORE), str(wheel_of(dist, "sanic-cookies-redis")))
    check_imports(
        session,
        {
            "sanic_cookies": str(CORE / "src"),
            "sanic_cookies.backends.memory": str(CORE / "src"),
            "sanic_cookies.backends.redis": "site-packages",
        },
        outside,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check + ruff format --check."""
    session.install(*group("lint"))
    paths = [p for p in LINT_PATHS if (ROOT / p).exists()]
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over all four packages (configuration in pyproject.toml)."""
    session.install(*editable(*ALL_MEMBERS), *group("typecheck"))
    session.run("mypy", *session.posargs)


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """Run examples/demo.py (memory backend) on http://localhost:8000."""
    session.install(*editable(CORE))
    session.run("python", "examples/demo.py")


#: The peer library bench/peers.py measures (issue 8 cites this version).
BENCH_PEER = "sanic-session==0.8.0"


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Benchmark (bench/run.py): bare Sanic, floors, a peer library, every backend; minutes.

    Arguments after ``--`` go to the script, e.g. ``nox -s bench -- --duration 5 --rounds 5``,
    ``-- --targets memory redis``, ``-- --profile memory:rmw`` (installs pyinstrument).
    The peer library (sanic-session, patched in bench/peers.py) is installed here only:
    it is no dependency of any distribution.
    """
    if not (ROOT / "bench" / "run.py").is_file():
        session.skip("bench/run.py does not exist yet")
    profiling = any(arg.startswith("--profile") for arg in session.posargs)
    session.install(*editable(*ALL_MEMBERS), BENCH_PEER, *(["pyinstrument"] if profiling else []))
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(default=False)
def scale(session: nox.Session) -> None:
    """Millions of sessions (bench/scale.py): 1,000,000 in Redis and in PostgreSQL; minutes.

    Needs the Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, db test) the tests
    use; writes under its own key prefix and schema and deletes them at the end. Arguments
    after ``--`` go to the script, e.g. ``nox -s scale -- --sessions 100000 --stores redis``.
    """
    session.install(*editable(*ALL_MEMBERS))
    session.run("python", "-m", "bench.scale", *session.posargs)


@nox.session(default=False)
def contention(session: nox.Session) -> None:
    """Contended sessions (bench/contention.py): 32 concurrent requests on one session.

    Lock waits p50/p99/max on Redis and PostgreSQL over 1 and 4 workers. To compare with
    another checkout, give its Python: ``nox -s contention -- --compare 1.0.0=/path/python``.
    """
    session.install(*editable(*ALL_MEMBERS))
    session.run("python", "-m", "bench.contention", *session.posargs)
