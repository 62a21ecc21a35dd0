"""Property-based: >= 10,000 generated cookie values against a real Sanic app.

Every value goes through the app's ASGI interface (request middleware, a
handler using ``async with`` or ``await load()``, response middleware), with
the Cookie header carried by hand. Each valid session stores a unique marker;
the property for every request is:

* the answer is a 200 (never a 5xx);
* if Sanic's cookie parser turns the header into exactly a live token, the
  answer carries that token's marker; otherwise the session is anonymous and
  no cookie is set. Never another session's marker or user.

The strategies below sum to 10,000 examples; each test checks that it sent
its own share (`sends_its_budget`), so the count holds however pytest-xdist
spreads the module over processes.
"""

from __future__ import annotations

import base64
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from cookie_support import COOKIE, Client, build_app, new_key, serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sanic.cookies.request import parse_cookie

from sanic_cookies.backends.cookie import CookieBackend
from sanic_cookies.backends.memory import MemoryBackend

pytestmark = pytest.mark.cookie
in_module_loop = pytest.mark.asyncio(loop_scope="module")

# Examples per strategy; they sum to 10,000.
BUDGET = {
    "text": 1800,
    "bytes": 1200,
    "token_shaped": 800,
    "bit_flips": 2000,
    "char_edits": 1500,
    "slices": 1000,
    "dead_tokens": 1200,
    "splices": 500,
}
assert sum(BUDGET.values()) == 10_000

SENT: dict[str, int] = dict.fromkeys(BUDGET, 0)
STRATEGY_OF: dict[str, str] = {}  # test function name -> its BUDGET key (see fuzz_settings)
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@dataclass
class Corpus:
    """Tokens made through the real app, by what they should yield."""

    client: Client
    live: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # token -> marker, user
    dead: list[str] = field(default_factory=list)  # retired/foreign key, expired, revoked


def fuzz_settings(name: str) -> Callable[[Any], Any]:
    """Hypothesis settings for strategy `name`, whose test must send BUDGET[name] values."""
    apply = settings(
        max_examples=BUDGET[name],
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )

    def register(test: Any) -> Any:
        STRATEGY_OF[test.__name__] = name
        return apply(test)

    return register


@pytest.fixture(autouse=True)
def sends_its_budget(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a fuzz test that sent fewer generated values than its budget."""
    strategy = STRATEGY_OF.get(request.function.__name__)
    before = SENT[strategy] if strategy else 0
    yield
    if strategy:
        sent = SENT[strategy] - before
        assert sent >= BUDGET[strategy], f"{strategy}: {sent} of {BUDGET[strategy]} sent"


async def _login(client: Client, user: str, marker: str) -> str:
    first = await client.request("GET", "/mark", params={"m": marker})
    token = first.cookie()
    assert token
    logged = await client.request("POST", "/login", token, params={"user": user})
    new = logged.cookie()
    assert new and new != token
    return new


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def corpus() -> AsyncIterator[Corpus]:
    retired, old, new, foreign = new_key(), new_key(), new_key(), new_key()
    app = build_app(
        CookieBackend(
            keys=[new, old], revocation=MemoryBackend(max_entries=None), single_process=True
        )
    )
    async with serve(app) as client:
        corpus = Corpus(client)
        # Live sessions: each with its own marker; some logged in; some under the old key.
        for i in range(24):
            reply = await client.request("GET", "/mark", params={"m": f"m{i}"})
            token = reply.cookie()
            assert token
            corpus.live[token] = (f"m{i}", None)
        for i in range(8):
            token = await _login(client, f"user{i}", f"login{i}")
            corpus.live[token] = (f"login{i}", f"user{i}")
        old_app = build_app(CookieBackend(keys=[old]))
        async with serve(old_app) as old_client:
            for i in range(8):
                reply = await old_client.request("GET", "/mark", params={"m": f"old{i}"})
                token = reply.cookie()
                assert token
                corpus.live[token] = (f"old{i}", None)
            # A lineage: an earlier token of a session stays valid after its next write.
            reply = await client.request("GET", "/mark", params={"m": "first"})
            first = reply.cookie()
            assert first
            second = (await client.request("GET", "/mark", first, params={"m": "second"})).cookie()
            assert second and second != first
            corpus.live[first] = ("first", None)
            corpus.live[second] = ("second", None)
        # Dead tokens: a retired key, a foreign key, expired ones, revoked ones.
        for keys in ([retired], [foreign], [retired, foreign]):
            other = build_app(CookieBackend(keys=keys), expiry=3600)
            async with serve(other) as other_client:
                for i in range(4):
                    reply = await other_client.request("GET", "/mark", params={"m": f"dead{i}"})
                    assert reply.cookie()
                    corpus.dead.append(reply.cookie() or "")
        # Sealed by the app's own key around a live session's record, already expired:
        # by the idle timeout, or by the absolute deadline.
        backend = CookieBackend(keys=[new, old])
        for token in list(corpus.live)[:4]:
            stored = await backend.decode_cookie(token)
            assert stored is not None
            corpus.dead.append(await backend.encode_cookie(stored.value, 1e-6))
            corpus.dead.append(
                await backend.encode_cookie(stored.value, 3600, deadline=time.time() + 1e-6)
            )
        for i in range(6):
            token = await _login(client, f"gone{i}", f"gone{i}")
            before_logout = (
                await client.request("GET", "/mark", token, params={"m": f"gone-again{i}"})
            ).cookie()
            assert before_logout
            out = await client.request("POST", "/logout", before_logout)
            assert out.cookie() == ""  # a deletion cookie
            corpus.dead += [token, before_logout]  # both tokens of the logged-out session
        for token in corpus.dead:
            reply = await client.request("GET", "/whoami", token)
            assert reply.json == {"m": None, "user": None, "new": True}, "setup: dead token"
        for token, (marker, user) in corpus.live.items():
            reply = await client.request("GET", "/whoami", token)
            assert reply.json == {"m": marker, "user": user, "new": False}, "setup: live token"
        yield corpus


async def check(corpus: Corpus, strategy: str, value: bytes, locked: bool) -> None:
    """Send `value` as the session cookie and check the property."""
    SENT[strategy] += 1
    reply = await corpus.client.request("GET", "/whoami" if locked else "/peek", value)
    assert reply.status == 200, (reply.status, value[:80])
    seen = parse_cookie((f"{COOKIE}=".encode() + value).decode("utf-8", "surrogateescape"))
    parsed = seen.get(COOKIE, [None])[0]
    if parsed in corpus.live:
        marker, user = corpus.live[parsed]
        assert reply.json == {"m": marker, "user": user, "new": False}, value[:80]
    else:
        assert reply.json == {"m": None, "user": None, "new": True}, value[:80]
        assert reply.cookie() is None, "an anonymous read sets no cookie"


def _tokens(corpus: Corpus) -> list[str]:
    return sorted(corpus.live)


# -- strategies -------------------------------------------------------------------------


@in_module_loop
@fuzz_settings("text")
@given(value=st.text(max_size=400), locked=st.booleans())
async def test_random_text(corpus: Corpus, value: str, locked: bool) -> None:
    await check(corpus, "text", value.encode("utf-8", "surrogatepass"), locked)


@in_module_loop
@fuzz_settings("bytes")
@given(value=st.binary(max_size=600), locked=st.booleans())
async def test_random_bytes(corpus: Corpus, value: bytes, locked: bool) -> None:
    await check(corpus, "bytes", value, locked)


@in_module_loop
@fuzz_settings("token_shaped")
@given(
    raw=st.binary(min_size=40, max_size=600),
    fernet_header=st.booleans(),
    padded=st.booleans(),
    locked=st.booleans(),
)
async def test_token_shaped_random(
    corpus: Corpus, raw: bytes, fernet_header: bool, padded: bool, locked: bool
) -> None:
    if fernet_header:
        raw = b"\x80" + raw
    text = base64.urlsafe_b64encode(raw)
    await check(corpus, "token_shaped", text if padded else text.rstrip(b"="), locked)


@in_module_loop
@fuzz_settings("bit_flips")
@given(data=st.data(), locked=st.booleans())
async def test_bit_flips(corpus: Corpus, data: st.DataObject, locked: bool) -> None:
    token = data.draw(st.sampled_from(_tokens(corpus) + corpus.dead))
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    flips = data.draw(st.lists(st.integers(0, len(raw) * 8 - 1), min_size=1, max_size=3))
    for bit in flips:
        raw[bit // 8] ^= 1 << (bit % 8)
    mutated = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=")
    await check(corpus, "bit_flips", mutated, locked)


@in_module_loop
@fuzz_settings("char_edits")
@given(data=st.data(), locked=st.booleans())
async def test_char_edits(corpus: Corpus, data: st.DataObject, locked: bool) -> None:
    token = data.draw(st.sampled_from(_tokens(corpus)))
    chars = list(token)
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(chars)))
        kind = data.draw(st.sampled_from(["replace", "insert", "delete", "swap"]))
        char = data.draw(st.sampled_from(ALPHABET + "=.~ \"';,\\%é\x00"))
        if kind == "insert" or not chars:
            chars.insert(where, char)
        elif kind == "replace":
            chars[min(where, len(chars) - 1)] = char
        elif kind == "delete":
            del chars[min(where, len(chars) - 1)]
        else:
            i = min(where, len(chars) - 2)
            if i >= 0:
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
    await check(corpus, "char_edits", "".join(chars).encode("utf-8"), locked)


@in_module_loop
@fuzz_settings("slices")
@given(data=st.data(), locked=st.booleans())
async def test_truncations_and_slices(corpus: Corpus, data: st.DataObject, locked: bool) -> None:
    token = data.draw(st.sampled_from(_tokens(corpus)))
    start = data.draw(st.integers(0, len(token)))
    stop = data.draw(st.integers(start, len(token)))
    if start == 0 and stop == len(token):
        stop -= 1  # always a proper slice: the whole token is the positive control elsewhere
    await check(corpus, "slices", token[start:stop].encode(), locked)


@in_module_loop
@fuzz_settings("dead_tokens")
@given(data=st.data(), locked=st.booleans())
async def test_dead_tokens_and_decorations(
    corpus: Corpus, data: st.DataObject, locked: bool
) -> None:
    # Retired/foreign key, expired, revoked - as they are, or quoted/padded/spaced, or
    # a live one wrapped the same way (which Sanic's parser may turn back into it).
    token = data.draw(st.sampled_from(corpus.dead + _tokens(corpus)))
    decoration = data.draw(
        st.sampled_from(["{}", '"{}"', " {} ", "{}=", "{}==", "{};", "x;{}", "{}\t", "{}%3D"])
    )
    await check(corpus, "dead_tokens", decoration.format(token).encode(), locked)


@in_module_loop
@fuzz_settings("splices")
@given(data=st.data(), locked=st.booleans())
async def test_splices_of_two_tokens(corpus: Corpus, data: st.DataObject, locked: bool) -> None:
    tokens = _tokens(corpus)
    a = data.draw(st.sampled_from(tokens))
    b = data.draw(st.sampled_from(tokens).filter(lambda t: t != a))
    cut = data.draw(st.integers(1, min(len(a), len(b)) - 1))
    await check(corpus, "splices", (a[:cut] + b[cut:]).encode(), locked)


@in_module_loop
async def test_live_tokens_are_the_positive_control(corpus: Corpus) -> None:
    # The property is not vacuous: every live token, sent as is, finds its own session.
    for token, locked in itertools.product(_tokens(corpus), (True, False)):
        reply = await corpus.client.request("GET", "/whoami" if locked else "/peek", token)
        marker, user = corpus.live[token]
        assert reply.json == {"m": marker, "user": user, "new": False}
