"""The command-line tool: ``python -m sanic_cookies`` / ``sanic-cookies``.

Subcommands: ``keygen`` (a key for the encrypted-cookie backend), ``ddl`` (the
PostgreSQL table), ``cleanup`` (sweep expired sessions out of a store) and
``check`` (round-trip a test session through a store and time each step).

Exit codes, for scripts: 0 success, 1 failure (the store is unreachable, an
operation failed, a package is missing), 2 usage error (bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from ._backend import Backend, ClientSideBackend, now
from ._discovery import backend_class, backend_from_url
from ._errors import SanicCookiesError
from ._ids import log_id, new_session_id, store_key
from ._record import SessionRecord, encode_record
from ._url import redact_url

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

PROG = "sanic-cookies"
POSTGRES_HINT = 'pip install "sanic-cookies[postgres]"'

logger = logging.getLogger("sanic_cookies")

T = TypeVar("T")
#: ``step(name, awaitable)``: its result and the milliseconds it took (see `_timed`).
_Step = Callable[[str, Awaitable[Any]], Awaitable[tuple[Any, float]]]

_EPILOG = """\
exit codes:
  0  success
  1  failure: the store is unreachable, an operation failed, a package is missing
  2  usage error: unknown command, bad or missing arguments

The backend URL may also come from the SESSION_BACKEND environment variable, and the
keys of cookie:// from SESSION_KEYS.
Run "%(prog)s COMMAND --help" for the options of one command.
"""


class CommandFailed(Exception):
    """A command could not do its job; the message is the one line the user sees."""


class UsageError(Exception):
    """The command line is wrong (exit code 2)."""


# -- argument parsing -------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _option(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name.isidentifier():
        # (Not the text: "password:s3cret" is a typo of an option that may be a secret.)
        raise argparse.ArgumentTypeError("expected NAME=VALUE, with NAME an identifier")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw  # not JSON: a plain string
    return name, value


def _add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        metavar="URL",
        default=os.environ.get("SESSION_BACKEND"),
        help="the store's URL, e.g. redis://127.0.0.1:6379/0 or postgresql://user@host/db "
        "(default: $SESSION_BACKEND)",
    )
    parser.add_argument(
        "-o",
        "--option",
        metavar="NAME=VALUE",
        action="append",
        type=_option,
        default=[],
        help="a keyword argument for the backend's from_url(); VALUE is parsed as JSON "
        "when it is JSON, else taken as a string (repeatable)",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_positive_float,
        default=10.0,
        help="give up on any single store operation after this long (default: 10)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the tool (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tools for sanic-cookies session stores.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log what the tool does (to stderr)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    keygen = commands.add_parser(
        "keygen",
        help="print a new key for the encrypted-cookie backend",
        description="Print new random keys for SESSION_KEYS (cookie:// backend): 32 random "
        "bytes, urlsafe base64, the format of a Fernet key. One key per line.",
    )
    keygen.add_argument(
        "--count",
        "-n",
        metavar="N",
        type=_positive_int,
        default=1,
        help="how many keys to print (default: 1)",
    )

    ddl = commands.add_parser(
        "ddl",
        help="print the PostgreSQL table definition",
        description="Print the SQL that creates the sessions table of the PostgreSQL backend, "
        f"for migrations. Needs the PostgreSQL backend: {POSTGRES_HINT}",
    )
    ddl.add_argument("--table", default="sessions", help="table name (default: sessions)")
    ddl.add_argument("--schema", default=None, help="schema name (default: the search path)")

    cleanup = commands.add_parser(
        "cleanup",
        help="delete expired sessions from a store",
        description="Delete the expired sessions a store still holds, through the backend's "
        "cleanup() (Backend.cleanup), for stores that do not expire entries by themselves "
        "(PostgreSQL). Run it from cron, or rely on the backend's own periodic sweep. A store "
        "with native expiry (Redis, expires_entries_itself = True) has nothing to remove; a "
        "backend that neither expires entries nor implements cleanup() is an error (exit 1).",
    )
    _add_backend_arguments(cleanup)

    check = commands.add_parser(
        "check",
        help="round-trip a test session through a store and time it",
        description="Connect to a store, then save, load, touch, lock and delete a "
        "throw-away session (and exercise the per-user index if the backend keeps one), "
        "printing the latency of each step. Exit 0 when every step worked.",
    )
    _add_backend_arguments(check)
    return parser


# -- helpers ------------------------------------------------------------------------------


def _resolve(args: argparse.Namespace) -> Backend:
    url: str | None = args.backend
    if not url:
        raise UsageError("no backend: pass --backend URL or set SESSION_BACKEND")
    options = dict(args.option)
    try:
        keys = os.environ.get("SESSION_KEYS")
        if keys and "keys" not in options and issubclass(backend_class(url), ClientSideBackend):
            options["keys"] = keys  # as a Session passes app.config.SESSION_KEYS
        return backend_from_url(url, **options)
    except SanicCookiesError as exc:
        raise CommandFailed(str(exc)) from None
    except (TypeError, ValueError, ImportError) as exc:
        raise CommandFailed(f"cannot build a backend for {redact_url(url)}: {exc}") from None


async def _timed(
    label: str, backend: Backend, awaitable: Awaitable[T], limit: float
) -> tuple[T, float]:
    """Await one store operation with a time limit; return (result, milliseconds)."""
    start = time.perf_counter()
    try:
        result = await asyncio.wait_for(awaitable, limit)
    except TimeoutError:
        raise CommandFailed(f"{label} on {backend.label} timed out after {limit:g}s") from None
    except CommandFailed:
        raise
    except Exception as exc:
        raise CommandFailed(
            f"{label} on {backend.label} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return result, (time.perf_counter() - start) * 1000


async def _close(backend: Backend, limit: float) -> None:
    try:
        await asyncio.wait_for(backend.close(), limit)
    except Exception as exc:  # the command's own result matters more
        logger.warning("closing %s failed: %s: %s", backend.label, type(exc).__name__, exc)


def _test_value(ttl: float) -> bytes:
    t = now()
    record = SessionRecord(
        data=msgspec.Raw(b'{"sanic-cookies":"check"}'), created=t, deadline=t + ttl, ttl=ttl
    )
    return encode_record(record)


# -- commands -----------------------------------------------------------------------------


def keygen(count: int) -> list[str]:
    """`count` new keys: 32 random bytes each, urlsafe base64 (Fernet's key format)."""
    return [base64.urlsafe_b64encode(os.urandom(32)).decode("ascii") for _ in range(count)]


def ddl_text(table: str, schema: str | None) -> str:
    """The PostgreSQL backend's DDL, or `CommandFailed` naming the package to install."""
    try:
        postgres = importlib.import_module("sanic_cookies.backends.postgres")
    except ImportError as exc:
        raise CommandFailed(
            f"the PostgreSQL backend is not installed ({exc}); install it with: {POSTGRES_HINT}"
        ) from None
    make_ddl: Callable[..., str] | None = getattr(postgres, "ddl", None)
    if make_ddl is None:
        raise CommandFailed(
            "the installed sanic_cookies.backends.postgres has no ddl(); "
            f"reinstall it with: {POSTGRES_HINT}"
        )
    try:
        return make_ddl(table=table, schema=schema)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


async def cleanup(backend: Backend, limit: float) -> int | None:
    """Run `Backend.cleanup`; return how many went (None: the store expires them itself)."""
    if backend.per_process:
        raise CommandFailed(
            f"{backend.label} keeps sessions inside each server process and sweeps them there; "
            "there is nothing to clean up from another process"
        )
    await _timed("open", backend, backend.open(), limit)
    try:
        removed, ms = await _timed("cleanup", backend, backend.cleanup(), limit)
    finally:
        await _close(backend, limit)
    logger.info("cleanup on %s took %.1f ms", backend.label, ms)
    if isinstance(removed, int) and not isinstance(removed, bool):
        return removed
    if not backend.expires_entries_itself:
        # The no-op default on a store that keeps expired entries: saying "nothing to
        # remove" would let a cron job report success while the store only grows.
        raise CommandFailed(
            f"{backend.label} does not expire sessions by itself (it does not declare "
            "expires_entries_itself = True) and its cleanup() removed nothing (it returned "
            f"{removed!r}): implement Backend.cleanup() to delete the expired entries"
        )
    return None


async def check(backend: Backend, limit: float) -> list[tuple[str, float]]:
    """Round-trip a throw-away session through `backend`; return (step, ms) pairs.

    Raises:
        CommandFailed: A step failed, timed out, or returned something wrong.
    """
    steps: list[tuple[str, float]] = []
    _, ms = await _timed("open", backend, backend.open(), limit)
    steps.append(("open", ms))
    try:
        if isinstance(backend, ClientSideBackend):
            await _check_client_side(backend, limit, steps)
        else:
            await _check_server_side(backend, limit, steps)
    finally:
        await _close(backend, limit)
    return steps


async def _check_server_side(
    backend: Backend, limit: float, steps: list[tuple[str, float]]
) -> None:
    key = store_key(new_session_id())
    value = _test_value(60.0)
    logger.debug("check: test session %s on %s", log_id(key), backend.label)

    def step(name: str, awaitable: Awaitable[T]) -> Awaitable[tuple[T, float]]:
        return _timed(name, backend, awaitable, limit)

    try:
        await _check_basics(backend, key, value, step, steps)
        steps.append(("lock", await _check_lock(backend, key, value, limit, step)))
        steps.append(("delete", await _check_delete(backend, key, step)))
        if backend.supports_user_index:
            steps.append(("user index", await _check_user_index(backend, value, step)))
        # A read replica (PostgreSQL's replica=) is asked on its own: the listing above
        # falls back to the primary when it fails, so it would report ok regardless.
        probe: Callable[[], Awaitable[object]] | None = getattr(backend, "probe_replica", None)
        if probe is not None:
            found, ms = await step("replica", probe())
            if found is not None:
                steps.append(("replica", ms))
    finally:
        try:  # never leave the test session behind, whatever failed
            await asyncio.wait_for(backend.delete(key), limit)
        except Exception as exc:
            logger.debug("check: removing the test session failed: %s", exc)


async def _check_basics(
    backend: Backend, key: str, value: bytes, step: _Step, steps: list[tuple[str, float]]
) -> None:
    """Save, load and touch the test session `key`, adding each step's time to `steps`."""
    saved, ms = await step("save", backend.save(key, value, 60.0))
    if saved is not True:
        raise CommandFailed(f"save on {backend.label} returned {saved!r}, expected True")
    steps.append(("save", ms))

    stored, ms = await step("load", backend.load(key))
    if stored is None or stored.value != value:
        raise CommandFailed(f"load on {backend.label} did not return what was saved")
    steps.append(("load", ms))

    existed, ms = await step("touch", backend.touch(key, 60.0))
    if existed is not True:
        raise CommandFailed(f"touch on {backend.label} did not find the saved session")
    steps.append(("touch", ms))


async def _check_lock(backend: Backend, key: str, value: bytes, limit: float, step: _Step) -> float:
    """Lock and unlock the test session (it must load what was saved); the ms it took."""
    lock = backend.lock(key, timeout=min(limit, 5.0), lease=10.0)
    stored, ms_acquire = await step("lock", lock.acquire())
    try:
        if stored is None or stored.value != value:
            raise CommandFailed(f"lock on {backend.label} did not load what was saved")
        _, ms_release = await step("unlock", lock.release())
    finally:
        await lock.release()
    return ms_acquire + ms_release


async def _check_delete(backend: Backend, key: str, step: _Step) -> float:
    """Delete the test session, and check it is gone; the ms the delete took."""
    _, ms = await step("delete", backend.delete(key))
    gone, _ = await step("load", backend.load(key))
    if gone is not None:
        raise CommandFailed(f"delete on {backend.label} left the session in place")
    return ms


async def _check_user_index(backend: Backend, value: bytes, step: _Step) -> float:
    user = f"sanic-cookies-check-{os.urandom(8).hex()}"
    key = store_key(new_session_id())
    total = 0.0
    try:
        await step("save", backend.save(key, value, 60.0, user_id=user))
        found, ms_list = await step("list_user_sessions", backend.list_user_sessions(user))
        if set(found) != {key}:
            raise CommandFailed(f"list_user_sessions on {backend.label} did not list the session")
        deleted, ms_delete = await step("delete_user_sessions", backend.delete_user_sessions(user))
        if deleted != 1:
            raise CommandFailed(
                f"delete_user_sessions on {backend.label} reported {deleted!r} deletions, "
                "expected 1"
            )
        total = ms_list + ms_delete
    finally:
        try:
            await asyncio.wait_for(backend.delete(key), 5.0)
        except Exception as exc:
            logger.debug("check: removing the test session failed: %s", exc)
    return total


async def _check_client_side(
    backend: ClientSideBackend, limit: float, steps: list[tuple[str, float]]
) -> None:
    value = _test_value(60.0)
    token, ms = await _timed("encode", backend, backend.encode_cookie(value, 60.0), limit)
    steps.append(("encode", ms))
    stored, ms = await _timed("decode", backend, backend.decode_cookie(token), limit)
    if stored is None or stored.value != value:
        raise CommandFailed(f"decode on {backend.label} did not return what was encoded")
    steps.append(("decode", ms))
    # Flip one character in the middle: a tampered cookie must decode to nothing.
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]
    forged, ms = await _timed("decode", backend, backend.decode_cookie(tampered), limit)
    if forged is not None:
        raise CommandFailed(f"{backend.label} accepted a tampered cookie")
    steps.append(("reject tampered", ms))


# -- entry point ----------------------------------------------------------------------------


def _fail(message: str, code: int) -> int:
    label = "usage error" if code == EXIT_USAGE else "error"
    print(f"{PROG}: {label}: {message}", file=sys.stderr)
    return code


def _run(args: argparse.Namespace) -> int:
    if args.command == "keygen":
        for key in keygen(args.count):
            print(key)
        return EXIT_OK
    if args.command == "ddl":
        print(ddl_text(args.table, args.schema))
        return EXIT_OK
    backend = _resolve(args)
    where = redact_url(args.backend)
    if args.command == "cleanup":
        removed = asyncio.run(cleanup(backend, args.timeout))
        if removed is None:
            print(f"{where}: nothing to remove ({backend.label} expires sessions by itself)")
        else:
            print(f"{where}: removed {removed} expired session(s)")
        return EXIT_OK
    steps = asyncio.run(check(backend, args.timeout))
    print(f"{where} ({backend.label})")
    for name, ms in steps:
        print(f"  {name:<16}{ms:9.2f} ms")
    print("ok")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; return the exit code (0 ok, 1 failure, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    # Without -v only errors: a failure then reads as the backend's own error line (if
    # any) and the tool's one-line reason, not as start-up warnings that repeat it.
    logger.setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    try:
        code = _run(args)
        sys.stdout.flush()  # here, not at exit: a closed pipe is then caught below
        return code
    except BrokenPipeError:
        # The reader left (`sanic-cookies ddl | head`): no traceback, and none at exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except CommandFailed as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_FAILURE)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
