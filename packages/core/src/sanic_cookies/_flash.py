"""Flash messages: a notice stored in the session now, shown once on a later page.

::

    @app.post("/login")
    async def login(request):
        ...
        await flash(request, "Welcome back!", "success")
        return redirect("/")

    @app.get("/")
    async def index(request):
        notices = await get_flashed_messages(request, with_categories=True)
        ...

Messages live in the session under ``_flashes`` as ``[category, message]`` pairs,
written under the session's lock, so they work on every backend and survive any
number of redirects until a page reads them. The queue is capped at
`MAX_FLASH_BYTES` of encoded text (oldest dropped first) so that it always fits in
an encrypted-cookie session.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Literal, overload

import msgspec
from sanic import Request

from ._session_access import locked, peek, session_named
from ._session_dict import SessionDict

__all__ = ["MAX_FLASH_BYTES", "flash", "get_flashed_messages"]

logger = logging.getLogger("sanic_cookies")

#: The session key of the queue (underscored: the library's, not the app's).
FLASH_KEY = "_flashes"
#: Most bytes the queue may take in the session, JSON-encoded. A cookie session has
#: about 4 KB in all; this leaves most of it to the application.
MAX_FLASH_BYTES = 1024
#: Where the messages read by this request are kept (by session name), so that every
#: call in the request (a layout and a page, say) sees them.
_READ = "_sanic_cookies_flashes_read"


def _queue(value: Any) -> list[list[str]]:
    """The stored queue, keeping only well-formed entries (the session may hold anything)."""
    if not isinstance(value, list):
        return []
    return [
        [entry[0], entry[1]]
        for entry in value
        if isinstance(entry, list)
        and len(entry) == 2
        and isinstance(entry[0], str)
        and isinstance(entry[1], str)
    ]


def _size(queue: list[list[str]]) -> int:
    return len(msgspec.json.encode(queue))


async def flash(
    request: Request, message: str, category: str = "info", *, session_name: str | None = None
) -> None:
    """Queue `message` for the next page that calls `get_flashed_messages`.

    Works inside ``async with`` of the session (written when the block ends) or
    outside it (locked, written before this returns). If the queue would exceed
    `MAX_FLASH_BYTES`, the oldest messages are dropped (and a line logged).

    Args:
        request: The current request.
        message: The text to show (plain text: escape it when you render it).
        category: A label for styling, such as "info", "success", "error".
        session_name: The session to store it in; None: the app's ``session``,
            else its only session.

    Raises:
        TypeError: `message` or `category` is not a str.
        ValueError: The message alone is over `MAX_FLASH_BYTES`.
    """
    if not isinstance(message, str) or not isinstance(category, str):
        raise TypeError("flash() takes a str message and a str category")
    entry = [category, message]
    if _size([entry]) > MAX_FLASH_BYTES:
        raise ValueError(
            f"A flash message is a short notice: at most {MAX_FLASH_BYTES} bytes encoded, "
            f"got {_size([entry])}"
        )
    sess = session_named(request, session_name, what="flash()")
    async with locked(sess) as held:
        queue = [*_queue(held.get(FLASH_KEY)), entry]
        dropped = 0
        while _size(queue) > MAX_FLASH_BYTES:
            queue.pop(0)
            dropped += 1
        if dropped:
            logger.info(
                "session %s: flash queue full; %d oldest message(s) dropped",
                sess.log_label,
                dropped,
            )
        held[FLASH_KEY] = queue


@overload
async def get_flashed_messages(
    request: Request,
    with_categories: Literal[False] = False,
    category_filter: Iterable[str] = (),
    *,
    session_name: str | None = None,
) -> list[str]: ...


@overload
async def get_flashed_messages(
    request: Request,
    with_categories: Literal[True],
    category_filter: Iterable[str] = (),
    *,
    session_name: str | None = None,
) -> list[tuple[str, str]]: ...


async def get_flashed_messages(
    request: Request,
    with_categories: bool = False,
    category_filter: Iterable[str] = (),
    *,
    session_name: str | None = None,
) -> list[str] | list[tuple[str, str]]:
    """Take the queued messages out of the session and return them, oldest first.

    Each message is returned once: the session no longer holds it after this
    request. Calls within the same request return the same messages again. With
    `category_filter`, only messages of those categories are taken; the others stay
    queued for a later call.

    A request with nothing queued costs one read of the session (none without a
    cookie) and no write.

    Args:
        request: The current request.
        with_categories: Return ``(category, message)`` pairs instead of messages.
        category_filter: Only these categories (empty: all).
        session_name: As for `flash`.
    """
    if isinstance(category_filter, str):
        raise TypeError("category_filter is a list of categories, not one string")
    wanted = frozenset(category_filter)
    sess = session_named(request, session_name, what="get_flashed_messages()")
    read = _read_in(request, sess.name)
    if _queue(await peek(sess, FLASH_KEY)):
        read.extend(await _take(sess, wanted))
    chosen = [e for e in read if _selected(e[0], wanted)]
    if with_categories:
        return chosen
    return [message for _, message in chosen]


def _read_in(request: Request, name: str) -> list[tuple[str, str]]:
    """The (category, message) pairs this request has taken from session `name` so far."""
    by_session: dict[str, list[tuple[str, str]]] | None = getattr(request.ctx, _READ, None)
    if by_session is None:
        by_session = {}
        setattr(request.ctx, _READ, by_session)
    return by_session.setdefault(name, [])


async def _take(sess: SessionDict, wanted: frozenset[str]) -> list[tuple[str, str]]:
    """Take the `wanted` messages out of the queue of `sess` (all if `wanted` is empty)."""
    async with locked(sess) as held:
        queue = _queue(held.get(FLASH_KEY))
        kept = [e for e in queue if not _selected(e[0], wanted)]
        if kept:
            held[FLASH_KEY] = kept
        else:
            held.pop(FLASH_KEY, None)
        return [(e[0], e[1]) for e in queue if _selected(e[0], wanted)]


def _selected(category: str, wanted: frozenset[str]) -> bool:
    """Whether a message of `category` is asked for (an empty `wanted` asks for all)."""
    return not wanted or category in wanted
