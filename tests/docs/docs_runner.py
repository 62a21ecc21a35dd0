"""Find the code examples in README.md and docs/*.md, and run them.

The rules a documentation writer follows (also in docs/contributing-docs.md):

* Every fenced ```` ```python ```` block is executed, top to bottom, in a fresh
  namespace (``__name__`` is ``"__docs__"``, so ``if __name__ == "__main__":``
  blocks, e.g. ``app.run()``, do not run). The current directory is a fresh
  temporary directory.
* If the namespace then holds a Sanic app with routes, the app is driven through
  ``app.asgi_client``: by the block's *check script* if it has one, otherwise
  by a smoke run that GETs every parameterless GET route once and expects no 5xx.
* HTML comments on the lines right above the opening fence are markers:

  ``<!-- requires: redis -->`` / ``postgres`` / ``cookie``
      The block needs that backend (and, for redis/postgres, the real server).
      Inside it every ``redis://…`` / ``postgresql://…`` URL literal is replaced
      by the test server's, with a fresh key prefix / schema, so examples can show
      realistic URLs (PostgreSQL examples get a database of their own, dropped after
      the run). A ``cookie`` block finds two fresh keys in ``$SESSION_KEYS``.
      Skipped locally if unavailable; a failure under ``CI=true``.
  ``<!-- continue -->``
      Run in the namespace left by the previous Python block of the same page
      (a page may build one example over several blocks).
  ``<!-- app: name -->``
      Drive the app bound to ``name`` (when a block defines several apps).
  ``<!-- fragment: why -->``
      Compiled but not run. Only for blocks that cannot stand alone (a method
      body shown out of its class); keep these rare — a test caps them at one
      in ten blocks.

* An HTML comment starting with ``test:`` right *after* the closing fence is the
  block's check script, one request per line::

      <!-- test:
      GET / -> 200 "visits: 1"
      GET / -> 200 "visits: 2"
      POST /login form username=ann&password=demo -> 302 location=/
      @phone GET /private -> 401
      -->

  ``METHOD PATH [form A=1&B=2 | json {...}] -> STATUS ["text" ...] [!"text"]
  [location=URL] [cookie=deleted]``. Quoted texts must appear in the body,
  ``!"…"`` must not. Each ``@name`` is a separate client (a second browser);
  every client carries the cookies it was sent (its own cookie jar, which also
  sends ``Secure`` cookies: the tests run over plain http).

* ```` ```console ```` blocks: each line ``$ python -m sanic_cookies …`` or
  ``$ sanic-cookies …`` is run and must exit 0 (or the code in
  ``<!-- exit: N -->``); other lines are shown output, not checked, and other
  commands (pip, nox) are not run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

PYTHON_LANGS = {"python", "py", "python3"}
SHELL_LANGS = {"console", "shell", "sh", "bash", "shell-session"}
KNOWN_MARKERS = {"requires", "continue", "app", "fragment", "exit"}
REQUIREMENTS = {"redis", "postgres", "cookie"}
CLI_PREFIXES = ("python -m sanic_cookies", "python3 -m sanic_cookies", "sanic-cookies")

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
_COMMENT = re.compile(r"^\s*<!--\s*(?P<name>[\w-]+)\s*:?\s*(?P<value>.*?)\s*-->\s*$")


@dataclasses.dataclass
class Block:
    """One fenced code block of a page."""

    path: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    markers: dict[str, str]
    script: str | None = None  # the check script after the block
    previous: Block | None = None  # the page's previous Python block (for `continue`)

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def is_python(self) -> bool:
        return self.lang in PYTHON_LANGS

    @property
    def requires(self) -> set[str]:
        return {r.strip() for r in self.markers.get("requires", "").split(",") if r.strip()}


class DocError(AssertionError):
    """A page breaks the rules above (unknown marker, unparsable script, ...)."""


def parse_page(path: Path) -> list[Block]:
    """Every fenced block of a Markdown page, with its markers and check script."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    previous_python: Block | None = None
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            line = lines[i]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            i += 1
        i += 1  # the closing fence
        block = Block(
            path=path,
            line=start + 1,
            lang=match["lang"].lower(),
            code="\n".join(body) + "\n",
            markers=_markers_above(lines, start, path),
        )
        script, i = _script_below(lines, i)
        block.script = script
        for name in block.markers:
            if name not in KNOWN_MARKERS:
                raise DocError(f"{block.id}: unknown marker <!-- {name}: ... -->")
        unknown = block.requires - REQUIREMENTS
        if unknown:
            raise DocError(f"{block.id}: unknown requirement(s) {sorted(unknown)}")
        if block.is_python:
            block.previous = previous_python
            if "continue" in block.markers and previous_python is None:
                raise DocError(f"{block.id}: <!-- continue --> but no earlier Python block")
            previous_python = block
        blocks.append(block)
    return blocks


def _markers_above(lines: list[str], fence_index: int, path: Path) -> dict[str, str]:
    markers: dict[str, str] = {}
    j = fence_index - 1
    while j >= 0 and (not lines[j].strip() or _COMMENT.match(lines[j])):
        comment = _COMMENT.match(lines[j])
        if comment is not None:
            markers[comment["name"].lower()] = comment["value"]
        elif j < fence_index - 1:
            break  # one blank line may separate the markers from the fence, no more
        j -= 1
    return markers


def _script_below(lines: list[str], i: int) -> tuple[str | None, int]:
    j = i
    while j < len(lines) and not lines[j].strip():
        j += 1
    if j < len(lines) and re.match(r"^\s*<!--\s*test:", lines[j]):
        text = lines[j].split("test:", 1)[1]
        while "-->" not in text:
            j += 1
            if j >= len(lines):
                raise DocError("unterminated <!-- test: --> comment")
            text += "\n" + lines[j]
        return text.split("-->", 1)[0].strip(), j + 1
    return None, i


def all_blocks() -> list[Block]:
    """Every block of README.md and docs/*.md."""
    return [block for path in DOC_FILES for block in parse_page(path)]


def python_blocks() -> list[Block]:
    return [b for b in all_blocks() if b.is_python]


@dataclasses.dataclass
class CliCommand:
    block: Block
    argv: list[str]  # arguments after the program name
    line: str
    exit_code: int


def cli_commands() -> list[CliCommand]:
    """The ``sanic-cookies`` commands shown in console blocks."""
    found: list[CliCommand] = []
    for block in all_blocks():
        if block.lang not in SHELL_LANGS:
            continue
        for line in block.code.splitlines():
            command = line.strip()
            if not command.startswith("$ "):
                continue
            command = command[2:].strip()
            for prefix in CLI_PREFIXES:
                if command == prefix or command.startswith(prefix + " "):
                    argv = shlex.split(command[len(prefix) :])
                    code = int(block.markers.get("exit", "0") or 0)
                    found.append(CliCommand(block, argv, command, code))
    return found


# -- check scripts -----------------------------------------------------------------------


@dataclasses.dataclass
class Step:
    client: str
    method: str
    path: str
    body_kind: str | None
    body: str | None
    status: int
    contains: list[str]
    absent: list[str]
    location: str | None
    cookie_deleted: bool
    text: str


_STEP = re.compile(
    r"^(?:@(?P<client>[\w-]+)\s+)?(?P<method>[A-Z]+)\s+(?P<path>\S+)"
    r"(?:\s+(?P<kind>form|json)\s+(?P<body>.+?))?\s*->\s*(?P<status>\d{3})(?P<rest>.*)$"
)
_EXPECT = re.compile(r'(?P<neg>!)?"(?P<text>(?:[^"\\]|\\.)*)"|location=(?P<loc>\S+)|cookie=deleted')


def parse_script(script: str, where: str) -> list[Step]:
    steps = []
    for raw in script.splitlines():
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        match = _STEP.match(text)
        if match is None:
            raise DocError(f"{where}: cannot parse check step {text!r}")
        contains: list[str] = []
        absent: list[str] = []
        location = None
        deleted = False
        rest = match["rest"].strip()
        pos = 0
        while pos < len(rest):
            if rest[pos].isspace():
                pos += 1
                continue
            expect = _EXPECT.match(rest, pos)
            if expect is None:
                raise DocError(f"{where}: cannot parse expectation {rest[pos:]!r} in {text!r}")
            if expect["text"] is not None:
                value = json.loads(f'"{expect["text"]}"')
                (absent if expect["neg"] else contains).append(value)
            elif expect["loc"] is not None:
                location = expect["loc"]
            else:
                deleted = True
            pos = expect.end()
        steps.append(
            Step(
                client=match["client"] or "default",
                method=match["method"],
                path=match["path"],
                body_kind=match["kind"],
                body=match["body"],
                status=int(match["status"]),
                contains=contains,
                absent=absent,
                location=location,
                cookie_deleted=deleted,
                text=text,
            )
        )
    return steps


class Browser:
    """A cookie jar that behaves like a browser on localhost: Secure cookies are sent."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.deleted: set[str] = set()

    def header(self) -> dict[str, str]:
        if not self.cookies:
            return {}
        return {"cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    def receive(self, set_cookie_headers: list[str]) -> None:
        self.deleted = set()
        for header in set_cookie_headers:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] in ("0", 0) or not morsel.value:
                    self.cookies.pop(name, None)
                    self.deleted.add(name)
                else:
                    self.cookies[name] = morsel.value


async def drive(app: Any, steps: list[Step], where: str) -> None:
    """Run a check script against `app` through its ASGI test client."""
    browsers: dict[str, Browser] = {}
    client = app.asgi_client
    for step in steps:
        browser = browsers.setdefault(step.client, Browser())
        client.cookies.clear()  # the jar is ours: httpx would drop Secure cookies on http
        kwargs: dict[str, Any] = {"headers": browser.header()}
        if step.body_kind == "form":
            kwargs["data"] = dict(_pairs(step.body or ""))
        elif step.body_kind == "json":
            kwargs["json"] = json.loads(step.body or "null")
        _, response = await client.request(step.method.lower(), step.path, **kwargs)
        browser.receive(response.headers.get_list("set-cookie"))
        body = response.text
        problem = None
        if response.status != step.status:
            problem = f"status {response.status}, expected {step.status}"
        missing = [t for t in step.contains if t not in body]
        if missing:
            problem = f"body lacks {missing!r}"
        present = [t for t in step.absent if t in body]
        if present:
            problem = f"body has {present!r}"
        if step.location is not None and response.headers.get("location") != step.location:
            problem = f"location {response.headers.get('location')!r}, expected {step.location!r}"
        if step.cookie_deleted and not browser.deleted:
            problem = "no cookie was deleted"
        if problem:
            raise AssertionError(f"{where}: `{step.text}`: {problem}\n--- body ---\n{body[:2000]}")


def _pairs(body: str) -> Iterator[tuple[str, str]]:
    from urllib.parse import parse_qsl

    yield from parse_qsl(body, keep_blank_values=True)


def smoke_steps(app: Any) -> list[Step]:
    """GET every parameterless GET route once; anything below 500 passes."""
    steps = []
    for route in app.router.routes:
        if "GET" not in route.methods or "<" in route.path:
            continue
        steps.append(
            Step(
                client="default",
                method="GET",
                path="/" + route.path.lstrip("/"),
                body_kind=None,
                body=None,
                status=0,
                contains=[],
                absent=[],
                location=None,
                cookie_deleted=False,
                text=f"GET /{route.path.lstrip('/')} (smoke)",
            )
        )
    return steps


async def smoke(app: Any, where: str) -> int:
    """Run `smoke_steps`; return how many requests were made."""
    steps = smoke_steps(app)
    browser = Browser()
    client = app.asgi_client
    for step in steps:
        client.cookies.clear()
        _, response = await client.get(step.path, headers=browser.header())
        browser.receive(response.headers.get_list("set-cookie"))
        assert response.status < 500, f"{where}: {step.text} answered {response.status}"
    return len(steps)
