"""The hand-written floors do the work they stand for (a floor that skipped it would flatter us).

``dict-locked`` is the memory backend's own work by hand: a returning visitor's counter
goes up, an unchanged session sends no cookie, a forged or unknown id gets a new
session.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sanic import Sanic
from sanic_testing.testing import SanicASGITestClient

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.apps import COOKIE, StoreOptions, dict_locked_app  # noqa: E402

OPTIONS = StoreOptions()


def _session_cookie(set_cookie: str) -> str:
    name, _, rest = set_cookie.partition("=")
    assert name == COOKIE
    return rest.split(";", 1)[0]


async def test_dict_locked_floor_counts_per_session_and_refuses_forged_ids() -> None:
    Sanic.test_mode = True
    app = dict_locked_app(OPTIONS)
    client = SanicASGITestClient(app)

    _, first = await client.get("/new")
    assert first.text == "1"
    sid = _session_cookie(first.headers["set-cookie"])
    assert "Max-Age=" in first.headers["set-cookie"]

    # The cookie is Secure: carried by hand over the test's plain http.
    _, again = await client.get("/rmw", headers={"cookie": f"{COOKIE}={sid}"})
    assert again.text == "2"
    assert "set-cookie" not in again.headers  # same id, expiry not due: nothing to send

    _, forged = await client.get("/rmw", headers={"cookie": f"{COOKIE}={'A' * 43}"})
    assert forged.text == "1"
    assert _session_cookie(forged.headers["set-cookie"]) != "A" * 43

    _, untouched = await client.get("/untouched", headers={"cookie": f"{COOKIE}={sid}"})
    assert untouched.text == "ok" and "set-cookie" not in untouched.headers
    _, read = await client.get("/read", headers={"cookie": f"{COOKIE}={sid}"})
    assert read.text == "2"
