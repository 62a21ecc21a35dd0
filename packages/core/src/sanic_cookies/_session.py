"""`Session`: the Sanic extension that gives each request a `SessionDict`."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Mapping, Sequence
from inspect import isawaitable
from types import SimpleNamespace
from typing import Any, Generic, cast

from sanic import Request, Sanic
from sanic.response import BaseHTTPResponse, HTTPResponse

from ._backend import Backend, ClientSideBackend
from ._client_side import ClientSide
from ._config import SessionConfig
from ._discovery import backend_class, backend_from_url
from ._errors import ConfigurationError, SessionTooLarge
from ._metrics import BackendMetrics, StoreObserver
from ._multi import MultiBackend
from ._schema import S, SessionSchema
from ._server_side import ServerSide
from ._session_dict import SessionDict
from ._session_side import SessionSide
from ._set_cookie import SET_COOKIE, CookieTemplate
from ._store_call import StoreCalls
from ._websocket import WebsocketSessionDict, guard_upgrade

__all__ = ["Session"]

logger = logging.getLogger("sanic_cookies")

# Sanic names its server worker processes "Sanic-Server-<n>-<m>".
_SERVER_WORKER_PREFIX = "Sanic-Server-"

#: A backend, its URL, or a list of them (the first is the primary; see `MultiBackend`).
BackendSpec = Backend | str | Sequence[Backend | str]


def _server_workers(app: Sanic[Any, Any]) -> int:
    """How many server processes run the app, as seen from the current process.

    ``app.state.workers`` holds the count in the main process (and is 1 in single-process
    mode) but is 0 inside Sanic's worker processes, where `before_server_start` runs: there,
    count the server workers in the multiplexer's shared worker state instead.
    """
    if app.state.workers:
        return int(app.state.workers)
    try:
        states = app.m.workers
    except AttributeError:  # no multiplexer: not a Sanic worker process
        return 1
    return sum(1 for name in states if name.startswith(_SERVER_WORKER_PREFIX)) or 1


class Session(Generic[S]):
    """Server-side sessions for a Sanic app.

    ::

        app = Sanic("shop")
        Session(app)                     # memory://, or app.config.SESSION_BACKEND

        @app.get("/")
        async def index(request):
            async with request.ctx.session as sess:
                sess["visits"] = visits = sess.get("visits", 0) + 1
            return text(str(visits))

    Args:
        app: The app to attach to now; or call `init_app` later.
        backend: A `Backend` instance or a URL (``"redis://127.0.0.1:6379/0"``), or a
            list of them: the first is read and locked, every one gets the writes
            (see `MultiBackend` and `add_backend`).
            None: ``app.config.SESSION_BACKEND``, else ``"memory://"``.
        session_name: Where the session appears: ``request.ctx.<session_name>``
            and ``app.ctx.exts.<session_name>``.
        backend_options: Keyword arguments for the backend's ``from_url``
            (else ``app.config.SESSION_BACKEND_OPTIONS``). With a list of backends,
            a dict applies to the first; a list gives one dict per backend.
        master_interface: Old (0.4) name of `backend`.
        schema: A `msgspec.Struct` class (or a `SessionSchema`) the session's data must
            match: typed access as ``sess.data``, validated on load and on write (see
            docs/typed-sessions.md). None: a mapping of JSON values.
        **settings: Any `SessionConfig` field (``cookie_name``, ``expiry``,
            ``secure``, ...); each defaults to ``app.config.SESSION_<FIELD>``.
    """

    #: Whether logout must be final (an `AuthSession`): a client-side backend that cannot
    #: refuse a logged-out cookie may then refuse to start (`check_deployment`).
    _final_logout: bool = False

    def __init__(
        self,
        app: Sanic[Any, Any] | None = None,
        *,
        backend: BackendSpec | None = None,
        session_name: str = "session",
        backend_options: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        master_interface: BackendSpec | None = None,
        schema: type[S] | SessionSchema[S] | None = None,
        **settings: Any,
    ) -> None:
        #: The schema of the session's data, or None (see docs/typed-sessions.md).
        self.schema = schema if isinstance(schema, SessionSchema | None) else SessionSchema(schema)
        if backend is not None and master_interface is not None:
            raise ConfigurationError("Pass backend= or its old name master_interface=, not both")
        unknown = set(settings) - {f for f in SessionConfig.__dataclass_fields__}
        if unknown:
            raise ConfigurationError(f"Unknown session setting(s): {', '.join(sorted(unknown))}")
        if not session_name.isidentifier():
            raise ConfigurationError(f"session_name must be an identifier, got {session_name!r}")
        self.name = session_name
        self._backend_arg = backend if backend is not None else master_interface
        # A dict, or one dict per backend of a list (Any: subclasses read it as either).
        self._backend_options: Any = backend_options
        self._settings = settings
        self._backend: Backend | None = None
        self._added: list[tuple[Backend | str, dict[str, Any]]] = []
        # Counted by SessionDict for a single backend; a MultiBackend counts per member.
        self._meter: BackendMetrics | None = None
        self._metrics: dict[str, BackendMetrics] = {}
        self._observer: StoreObserver | None = None  # see observe_store
        # Every store call of the session and its requests goes through this (set with the backend).
        self._store = StoreCalls("(no backend yet)")
        self._cookie_template: tuple[SessionConfig, CookieTemplate] | None = None
        self._side: SessionSide | None = None  # see `side`
        self.config = self._resolve_config({})
        self.app: Sanic[Any, Any] | None = None
        if app is not None:
            self.init_app(app)

    # -- set-up ----------------------------------------------------------------

    def init_app(self, app: Sanic[Any, Any]) -> None:
        """Attach to `app`: middleware, start-up and shutdown listeners, ``app.ctx.exts``."""
        if self.app is not None:
            raise ConfigurationError(f"Session {self.name!r} is already attached to an app")
        exts = getattr(app.ctx, "exts", None)
        if exts is None:
            exts = app.ctx.exts = SimpleNamespace()
        if getattr(exts, self.name, None) is not None:
            raise ConfigurationError(
                f"App already has a session named {self.name!r}; give this one another session_name"
            )
        setattr(exts, self.name, self)
        self.app = app
        self.config = self._resolve_config(app.config)
        app.register_listener(self._start, "before_server_start")
        app.register_listener(self._stop, "after_server_stop")
        app.register_middleware(self._on_request, "request")
        app.register_middleware(self._on_response, "response")

    @property
    def config_prefix(self) -> str:
        """The ``app.config`` prefix of this session's settings: ``SESSION_``."""
        return "SESSION_"

    def _resolve_config(self, app_config: Mapping[str, Any]) -> SessionConfig:
        """Settings from the constructor over ``SESSION_*`` app config (subclasses may differ)."""
        return SessionConfig.resolve(self._settings, app_config)

    async def _start(self, app: Sanic[Any, Any]) -> None:
        self.config = self._resolve_config(app.config)
        # Kept across restarts of the same app (test clients start it per request).
        backend = self._backend if self._backend is not None else self._combined_backend(app)
        workers = _server_workers(app)
        if backend.per_process and workers > 1:
            warnings.warn(
                f"Session {self.name!r} uses {backend.label}, whose sessions live in one process, "
                f"but the app runs {workers} workers: each worker sees different "
                "sessions. Use a shared backend such as redis:// or postgresql://.",
                RuntimeWarning,
                stacklevel=1,
            )
        if isinstance(backend, ClientSideBackend):
            backend.check_deployment(
                session=self.name, workers=workers, final_logout=self._final_logout
            )
        await backend.open()
        self._open(backend)
        logger.info("session %r: backend %s open", self.name, backend.label)

    def _open(self, backend: Backend) -> None:
        """Use `backend` (opened) under the current `config`: choose its side, once."""
        self._backend = backend
        key = self._cookie_key()
        if isinstance(backend, ClientSideBackend):
            side: SessionSide = ClientSide(
                backend, self._store, self.config, key, self._check_cookie_size
            )
        else:
            side = ServerSide(backend, self._store, self.config, key, self._check_data_size)
        self._side = side

    async def _stop(self, app: Sanic[Any, Any]) -> None:
        if self._backend is not None:
            await self._backend.close()

    def _resolve_backend(self, app: Sanic[Any, Any]) -> Backend:
        spec = self._backend_arg
        if spec is None:
            spec = app.config.get("SESSION_BACKEND") or "memory://"
        options = self._backend_options
        if options is None:
            options = app.config.get("SESSION_BACKEND_OPTIONS") or {}
        return self._build_backend(spec, options)

    def _build_backend(self, spec: Any, options: Any) -> Backend:
        """A backend from an instance, a URL, or a list of them (the first is the primary)."""
        if isinstance(options, str):
            options = _options_from_text(options)
        if isinstance(spec, Sequence) and not isinstance(spec, str):
            if not spec:
                raise ConfigurationError("The list of session backends is empty")
            if isinstance(options, Mapping):
                options = [options, *([{}] * (len(spec) - 1))]
            if len(options) != len(spec):
                raise ConfigurationError(
                    f"{len(spec)} session backends but {len(options)} dicts of backend options"
                )
            members = [self._build_backend(s, o) for s, o in zip(spec, options, strict=True)]
            return members[0] if len(members) == 1 else MultiBackend(*members)
        if isinstance(spec, Backend):
            return spec
        if isinstance(spec, str):
            return backend_from_url(spec, **self._with_keys(spec, options))
        raise ConfigurationError(
            "A session backend must be a Backend, a URL string or a list of them, "
            f"got {type(spec).__name__}"
        )

    def _with_keys(self, url: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
        """`options`, plus ``keys=app.config.SESSION_KEYS`` for a client-side backend's URL.

        The encryption keys of ``cookie://`` live in ``SESSION_KEYS``; server-side
        backends take no keys, so they never get them.
        """
        keys = self.app.config.get("SESSION_KEYS") if self.app is not None else None
        if keys is None or "keys" in options:
            return options
        if not issubclass(backend_class(url), ClientSideBackend):
            return options
        return {**options, "keys": keys}

    def _combined_backend(self, app: Sanic[Any, Any]) -> Backend:
        """The configured backend plus those of `add_backend`; sets up the counters."""
        backend = self._resolve_backend(app)
        added = [self._build_backend(spec, options) for spec, options in self._added]
        if added:
            if isinstance(backend, MultiBackend):
                for extra in added:
                    backend.add(extra)
            else:
                backend = MultiBackend(backend, *added)
        if isinstance(backend, MultiBackend):
            self._meter, self._metrics = None, backend.metrics
            backend.observer = self._observer
        else:
            self._meter = BackendMetrics()
            self._metrics = {backend.label: self._meter}
        self._store = StoreCalls(backend.label, self._meter, self._observer)
        return backend

    def add_backend(self, backend: Backend | str, **options: Any) -> None:
        """Also write every session to `backend` (a `Backend` or a URL).

        The first backend (``backend=`` or ``SESSION_BACKEND``) stays the primary:
        it alone is read and locked. Added backends receive every write, touch
        and delete; their failures are logged and counted but never fail a
        request (see `MultiBackend`). Call it before the server starts.

        Args:
            backend: The backend, or its URL.
            **options: Keyword arguments for the backend's ``from_url`` (URLs only).
        """
        if self._backend is not None:
            raise ConfigurationError("Add session backends before the server starts")
        if isinstance(backend, Backend) and options:
            raise ConfigurationError("Backend options apply to URLs, not to Backend instances")
        self._added.append((backend, options))

    def add_interface(self, interface: Backend | str, **options: Any) -> None:
        """Old (0.4) name of `add_backend`."""
        self.add_backend(interface, **options)

    def observe_store(self, observer: StoreObserver | None) -> None:
        """Show every store call this session makes to `observer` (None: stop).

        For tracing and timing, e.g. ``sanic_cookies.otel.instrument(session)``.
        Off by default, and then free. Call it before the server starts.
        """
        if self._backend is not None:
            raise ConfigurationError("Set the store observer before the server starts")
        self._observer = observer

    @property
    def metrics(self) -> dict[str, BackendMetrics]:
        """Counters of each backend, by label (live objects; `BackendMetrics.copy` to keep).

        Empty until the server has started. A single backend's counters cover the
        calls the session makes; see `BackendMetrics`.
        """
        return dict(self._metrics)

    @property
    def session_name(self) -> str:
        """Old (0.4) name of `name`: where the session appears on ``request.ctx``."""
        return self.name

    @property
    def backend(self) -> Backend:
        """The backend in use (available once the server has started)."""
        if self._backend is None:
            raise RuntimeError(
                f"Session {self.name!r} has no backend yet: it is set up when the server starts"
            )
        return self._backend

    @property
    def side(self) -> SessionSide:
        """How this session's requests store it, server-side or client-side (once started).

        Chosen once, when the backend opens; `SessionDict` works through it.
        """
        side = self._side
        if side is None or side.backend is not self._backend or side.config is not self.config:
            self._open(self.backend)  # opened outside `_start` (`AuthSession`), or reconfigured
            side = self._side
            assert side is not None
        return side

    # -- per request -------------------------------------------------------------

    def of(self, request: Request) -> SessionDict[S]:
        """This session's `SessionDict` of `request`, typed ``SessionDict[MyStruct]`` with a schema.

        The same object as ``request.ctx.<name>``, for type checkers: ``async with
        session.of(request) as sess:`` makes ``sess.data`` a ``MyStruct``.
        """
        sess = getattr(request.ctx, self.name, None)
        if not isinstance(sess, SessionDict) or not sess.is_of(self):
            raise ConfigurationError(f"Session {self.name!r} is not attached to this request's app")
        return sess

    def _cookie_key(self) -> str:
        prefix = "__Host-" if self.config.host_prefix else ""
        return prefix + self.config.cookie_name

    async def _on_request(self, request: Request) -> HTTPResponse | None:
        route = request.route  # (None when Sanic runs middleware for a request it could not route)
        if route is not None and route.extra.websocket:  # no response will follow: _websocket.py
            await WebsocketSessionDict.attach(self, request)
            return await guard_upgrade(self, request)
        # The cookie is read when the session is first used (most requests never do).
        sess = SessionDict(self, request.headers)
        setattr(request.ctx, self.name, sess)
        if self.config.autoload:
            await sess.autoload()
        return None

    async def _on_response(
        self, request: Request, response: BaseHTTPResponse
    ) -> HTTPResponse | None:
        sess: SessionDict | None = getattr(request.ctx, self.name, None)
        if sess is None or not sess.in_use:
            return None  # never used: nothing to write, release or send (and no await)
        try:
            work = sess.finish(response.status >= 500)
            if work is not None:
                await work
            cookie = sess.cookie_update()
        except Exception as exc:
            # Sanic logs an exception raised by response middleware and sends the handler's
            # response anyway: a 200 for a write that never happened. Answer with the
            # app's error response for it instead (503 for a store failure).
            return await self._error_response(request, exc)
        if cookie is not None:
            # What response.add_cookie does, with a Cookie that renders faster (same bytes).
            template = self._template()
            response.headers.add(SET_COOKIE, template.make(cookie.value, cookie.max_age))
        return None

    @staticmethod
    async def _error_response(request: Request, exc: Exception) -> HTTPResponse:
        response: Any = request.app.error_handler.response(request, exc)  # type: ignore[no-untyped-call]
        if isawaitable(response):
            response = await response
        return cast(HTTPResponse, response)

    def _template(self) -> CookieTemplate:
        """The cookie's attributes under the current `config` (checked once per config)."""
        config = self.config
        cached = self._cookie_template
        if cached is not None and cached[0] is config:
            return cached[1]
        template = CookieTemplate(
            config.cookie_name,
            path=config.path,
            domain=config.domain,
            secure=config.secure,
            httponly=config.httponly,
            samesite=config.samesite or None,  # False: Sanic omits the attribute for None
            partitioned=config.partitioned,
            host_prefix=config.host_prefix,
        )
        self._cookie_template = (config, template)
        return template

    def _check_data_size(self, size: int) -> None:
        """Raise `SessionTooLarge` if `size` bytes of session data exceed `max_size` (server-side).

        Called before anything is written. Client-side backends have their own
        limit, the cookie's, checked on the whole ``Set-Cookie`` value.
        """
        limit = self.config.max_size
        if limit is not None and size > limit:
            setting = f"max_size ({self.config_prefix}MAX_SIZE)"
            raise SessionTooLarge(size, limit, setting=setting)

    def _check_cookie_size(self, value: str, max_age: int | None, limit: int) -> None:
        """Raise `SessionTooLarge` if the ``Set-Cookie`` value for `value` exceeds `limit` bytes.

        Measured on the header Sanic would send: name, value and every attribute.
        """
        size = self._template().size(value, max_age)  # (worked out, not rendered)
        if size > limit:
            raise SessionTooLarge(size, limit)


def _options_from_text(text: str) -> Any:
    """Backend options given as text: JSON, as an environment variable gives them.

    (``SANIC_SESSION_BACKEND_OPTIONS='{"prefix": "shop:"}'`` reaches the app's config as
    a string: Sanic converts numbers and booleans from the environment, not JSON.)
    """
    try:
        options = json.loads(text)
    except ValueError:
        options = None
    if not isinstance(options, dict | list):
        # The text is not repeated: it may hold a password.
        raise ConfigurationError(
            "Session backend options must be a dict (or a list of dicts), or that as JSON "
            "text (as set from the environment); got text that is not a JSON object or array"
        )
    return options
