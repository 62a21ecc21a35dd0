"""Session ids: the shape check every request with a cookie makes (`sanic_cookies._ids`)."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from sanic_cookies._ids import is_session_id, new_session_id

# What an id we issue looks like: 32 random bytes in base64url, without padding.
SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def test_every_new_id_has_the_shape() -> None:
    ids = {new_session_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(is_session_id(i) and SHAPE.fullmatch(i) for i in ids)


@given(
    st.text(min_size=40, max_size=46)
    | st.text(alphabet=ALPHABET + "=+/. \x00é\udcff", min_size=43, max_size=43)
)
def test_the_check_is_the_shape_exactly(value: str) -> None:
    # Any other character (padding, standard base64, NUL, non-ASCII, a lone surrogate as
    # undecodable cookie bytes arrive) or length is not an id.
    assert is_session_id(value) == (SHAPE.fullmatch(value) is not None)


def test_odd_values_are_not_ids() -> None:
    good = new_session_id()
    for value in (
        None,
        "",
        good[:-1],
        good + "A",
        good[:-1] + "\udcff",
        good[:-1] + "=",
        good[:-1] + "\n",
        "é" * 43,
        good.encode().hex()[:43] + "\x00",
    ):
        assert not is_session_id(value)
    assert is_session_id(good)
