"""Typed sessions: a `msgspec.Struct` as the schema of a session's data.

``Session(app, schema=Cart)`` keeps each request's data in a `SchemaData`: a mutable
mapping whose one source of truth is a ``Cart`` instance (``sess.data``), so
``sess["items"]`` and ``sess.data.items`` are the same object, and a change made
through either is seen by the dirty check (which compares encodings, not objects).

Keys starting with ``_`` are the library's (the CSRF secret, the flash queue): a
typed session keeps them beside the fields, untyped, exactly as an untyped session
does. The stored form is the same JSON object an untyped session writes: the
library's keys, then the fields that differ from their defaults (so a session at
its defaults is empty, and is not stored, like an empty dict session).

Data is validated when it is loaded (a stored record that no longer matches is
logged in one line and its fields start from their defaults: never a 500) and when
it is written (`SessionValidationError` in the handler: an invalid record is never
stored). See docs/typed-sessions.md.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Generic

import msgspec
import msgspec.inspect

from ._errors import ConfigurationError, SessionSerializationError, SessionValidationError
from ._record import decode_data
from ._record import encode_data as encode_dict

if TYPE_CHECKING:
    from typing_extensions import TypeVar

    from ._session_state import SessionState

    #: The schema of a typed session; `Any` for an untyped one.
    S = TypeVar("S", bound=msgspec.Struct, default=Any)
else:
    from typing import TypeVar

    S = TypeVar("S", bound=msgspec.Struct)  # the default only matters to type checkers

__all__ = ["Migrate", "S", "SchemaData", "SessionSchema", "decoded", "model_of"]

logger = logging.getLogger("sanic_cookies")

#: Keys starting with this belong to the library (``_csrf``, ``_flashes``), not the schema.
LIBRARY_PREFIX = "_"

#: The library's keys a typed session's mapping may set: the CSRF secret
#: (`sanic_cookies._csrf_token.TOKEN_KEY`) and the flash queue (`sanic_cookies._flash.FLASH_KEY`).
LIBRARY_KEYS = frozenset({"_csrf", "_flashes"})

#: The requests' sessions whose mismatching record was logged, by id (a SessionDict, a
#: mapping, is unhashable): one line per request, however often it reloads the record.
_reported: dict[int, weakref.ref[SessionState]] = {}


def _first_report(owner: SessionState) -> bool:
    key = id(owner)
    if key in _reported:
        return False
    _reported[key] = weakref.ref(owner, lambda _: _reported.pop(key, None))
    return True


#: A function from the stored fields (a dict of JSON values) to what the schema should read.
Migrate = Callable[[dict[str, Any]], dict[str, Any]]


_json = msgspec.json.encode


#: The starts of msgspec's validation messages that name types and fields, never values.
_SAFE_REASONS = ("Expected `", "Object missing required field `")


def _reason(exc: msgspec.ValidationError) -> str:
    """msgspec's reason for `exc` if it names no value (see `_SAFE_REASONS`)."""
    reason = str(exc).rpartition(" - at `")[0] or str(exc)
    return reason if reason.startswith(_SAFE_REASONS) else "invalid value"


def _where(exc: msgspec.ValidationError) -> str:
    """The path msgspec names in `exc` (``$.cart[0]``): never the offending value.

    msgspec names a dict key's mismatch as ``key` in `$.prices``: that is ``$.prices``.
    """
    _, sep, path = str(exc).rpartition(" - at `")
    if not sep:
        return "$"
    return path.rstrip("`").rpartition("` in `")[2]


_MUTABLE = (list, dict, set, bytearray)


def _mutable_ids(value: Any) -> set[int]:
    """The ids of the mutable objects in `value` (a default), looking inside frozen values."""
    if isinstance(value, _MUTABLE):
        return {id(value)}
    if isinstance(value, msgspec.Struct):
        if not value.__struct_config__.frozen:
            return {id(value)}
        inner: tuple[Any, ...] = msgspec.structs.astuple(value)
    elif isinstance(value, tuple | frozenset):
        inner = tuple(value)
    else:
        return set()
    out: set[int] = set()
    for item in inner:
        out |= _mutable_ids(item)
    return out


def _struct_types(node: Any, seen: dict[type, None]) -> None:
    """Every Struct class reachable from the `msgspec.inspect` type `node`, into `seen`."""
    if isinstance(node, msgspec.inspect.StructType):
        if node.cls in seen:
            return
        seen[node.cls] = None
    if isinstance(node, msgspec.inspect.Field):
        _struct_types(node.type, seen)
        return
    if not isinstance(node, msgspec.inspect.Type):
        return
    for value in msgspec.structs.astuple(node):
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, msgspec.inspect.Type | msgspec.inspect.Field):
                _struct_types(item, seen)


def _check_defaults(struct: type[msgspec.Struct]) -> None:
    """Refuse a default that every session would share, or that differs per session.

    msgspec copies a ``[]``/``{}``/``set()`` default per instance, and refuses a mutable
    Struct as a default, but a frozen Struct (or tuple) default is one object for the
    whole process: a list inside it, appended to by one user's request, would be seen
    by every other session. Checked for every Struct the schema can hold.

    A ``default_factory`` of the schema's own fields must give the same value on every
    call (compared by encoding): a field at its default is not stored, so a default that
    differs per session (``uuid4``) would make every visitor's session non-empty, and
    stored, on its first read.

    Raises:
        ConfigurationError: Such a default; the message says what to write instead.
    """
    types: dict[type, None] = {}
    _struct_types(msgspec.inspect.type_info(struct), types)
    for cls in types:
        for field in msgspec.structs.fields(cls):
            where = (
                f"Field {field.name!r} of {cls.__qualname__} (session schema {struct.__qualname__})"
            )
            if field.default is not msgspec.NODEFAULT and _mutable_ids(field.default):
                kind = type(field.default).__name__
                raise ConfigurationError(
                    f"{where} defaults to one {kind} object holding a mutable value, which "
                    "every session would share (a change made for one user would be seen by "
                    f"all): use msgspec.field(default_factory={kind}) or a default_factory "
                    "that builds a new value each time"
                )
            if field.default_factory is not msgspec.NODEFAULT:
                _check_factory(field.default_factory, where, per_session=cls is struct)


def _check_factory(factory: Callable[[], Any], where: str, *, per_session: bool) -> None:
    made = (factory(), factory())  # both alive at once, so their ids differ unless shared
    if _mutable_ids(made[0]) & _mutable_ids(made[1]):
        raise ConfigurationError(
            f"{where}: its default_factory returns the same mutable object each time, which "
            "every session would share: build a new one per call"
        )
    try:
        differs = per_session and _json(made[0]) != _json(made[1])
    except (TypeError, ValueError, OverflowError):
        return  # not encodable: the check of the defaults says so
    if differs:
        raise ConfigurationError(
            f"{where}: its default_factory gives a different value on each call, so every "
            "new session would differ from its defaults and be stored on its first read: "
            "default to an empty value and set it where it is needed"
        )


def _checked_fields(struct: Any) -> tuple[msgspec.structs.FieldInfo, ...]:
    """The fields of `struct`, if it can be a session's schema (see `SessionSchema`).

    Raises:
        ConfigurationError: It cannot; the message says why.
    """
    if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
        raise ConfigurationError(f"A session schema must be a msgspec.Struct, got {struct!r}")
    name = struct.__qualname__
    config = struct.__struct_config__
    if config.array_like or config.frozen:
        kind = "array_like" if config.array_like else "frozen"
        raise ConfigurationError(
            f"Session schema {name} is {kind}: a session's data is a JSON object that "
            "changes; use a plain msgspec.Struct"
        )
    fields = msgspec.structs.fields(struct)
    for field in fields:
        if field.required:
            raise ConfigurationError(
                f"Field {field.name!r} of session schema {name} needs a default: "
                "a new session starts from the defaults"
            )
        if field.name.startswith(LIBRARY_PREFIX) or field.encode_name.startswith(LIBRARY_PREFIX):
            raise ConfigurationError(
                f"Field {field.name!r} of session schema {name}: names starting with "
                f"{LIBRARY_PREFIX!r} are the library's (CSRF token, flash messages)"
            )
    _check_defaults(struct)
    return fields


class SessionSchema(Generic[S]):
    """The schema of a typed session: a `msgspec.Struct` class, checked and compiled once.

    ``Session(app, schema=Cart)`` wraps ``Cart`` in one; pass one yourself to give a
    migration function: ``Session(app, schema=SessionSchema(Cart, migrate=upgrade))``.

    Args:
        struct: A `msgspec.Struct` subclass, not frozen, not ``array_like``, every field
            with a default (a new session starts from the defaults), no field name (or
            encoded name) starting with ``_`` (those keys are the library's).
        migrate: Called with the stored fields (a dict of JSON values, the library's
            ``_`` keys left out) before they are validated, on every load; returns
            what the schema should read. For changes msgspec's defaults and renames
            cannot express (see docs/typed-sessions.md). If it raises, the stored
            fields are treated as not matching. Each write checks that it returns what
            this schema writes unchanged (else `SessionValidationError`).
        version_field: The name of a field stored in every record that stores any
            field, even at its default, so `migrate` can tell a current record from an
            old one.

    Raises:
        ConfigurationError: `struct` cannot be a session's schema (the message says why).
    """

    def __init__(
        self, struct: type[S], *, migrate: Migrate | None = None, version_field: str | None = None
    ) -> None:
        fields = _checked_fields(struct)
        name = struct.__qualname__
        if migrate is not None and not callable(migrate):
            raise ConfigurationError("migrate must be callable")
        by_name = {f.name: f.encode_name for f in fields}
        if version_field is not None and version_field not in by_name:
            raise ConfigurationError(
                f"version_field {version_field!r} is not a field of session schema {name}"
            )
        #: The `msgspec.Struct` class.
        self.type = struct
        #: The migration function, or None.
        self.migrate = migrate
        #: (attribute name, encoded name) of each field, in order.
        self.fields: tuple[tuple[str, str], ...] = tuple((f.name, f.encode_name) for f in fields)
        self.names = frozenset(f.name for f in fields)
        #: The field stored whenever any other field is (see `encode_fields`), or None.
        self.version_field = version_field
        self._version_key = b"" if version_field is None else _json(by_name[version_field])
        defaults = struct()
        try:
            # What "at its default" means, compared by encoding (0 == False == 0.0 in
            # Python): (attribute, encoded key, encoded default) per field.
            self._encoded: tuple[tuple[str, bytes, bytes], ...] = tuple(
                (attr, _json(key), _json(getattr(defaults, attr))) for attr, key in self.fields
            )
            self.check(_json(defaults))
            self.check(b"{}")  # what a session at its defaults stores, through `migrate`
        except (TypeError, SessionSerializationError) as exc:
            raise ConfigurationError(f"The defaults of session schema {name}: {exc}") from None

    def __repr__(self) -> str:
        return f"<SessionSchema {self.type.__qualname__}>"

    def new(self) -> SchemaData:
        """The data of a new session: the defaults, no library keys."""
        return SchemaData(self, self.type(), {}, b"{}")

    def load(self, data: dict[str, Any], owner: SessionState) -> tuple[SchemaData, bytes]:
        """Typed data from a stored dict, and its encoding (what a write compares against).

        A dict that does not match (after `migrate`) gives the defaults, with one log
        line naming the session, the schema and where it differs (never a value). The
        library's keys are kept either way, and the encoding is canonical: a request
        that only reads an old-format record does not rewrite it.
        """
        value = self.read(data, owner)
        return value, value.encode_session_data()

    def read(self, data: Mapping[str, Any], owner: SessionState | None) -> SchemaData:
        """Typed data from a stored dict (see `load`); `owner` None: mismatches are not logged."""
        extras = {k: v for k, v in data.items() if k.startswith(LIBRARY_PREFIX)}
        stored = {k: v for k, v in data.items() if not k.startswith(LIBRARY_PREFIX)}
        model = self._convert(stored, owner)
        fields = self.type() if model is None else model
        value = SchemaData(self, fields, extras, self.encode_fields(fields))
        value.mismatch = model is None
        return value

    def _convert(self, stored: dict[str, Any], owner: SessionState | None) -> S | None:
        """`stored` as the schema; None (logged once per request) if it does not match."""
        name = self.type.__qualname__
        try:
            if self.migrate is not None:
                stored = self.migrate(stored)
            return self._from_json(stored)
        except msgspec.ValidationError as exc:
            why = f"does not match the schema {name} (at {_where(exc)})"
        except Exception as exc:  # migrate, or a __post_init__, raised
            why = f"could not be migrated to the schema {name} ({type(exc).__name__})"
        if owner is not None and _first_report(owner):
            logger.warning(
                "session %s: stored data %s; its fields start from their defaults",
                owner.log_label,
                why,
            )
        return None

    def encode_fields(self, model: S) -> bytes:
        """The JSON object of the fields of `model` whose encoding differs from the default's.

        The `version_field` is stored whenever another field is, at its default too: the
        record then says which version wrote it (`migrate` reads it on the next load).

        Raises:
            SessionValidationError: A field's value cannot be encoded at all.
        """
        parts: list[bytes] = []
        version = self.version_field
        for attr, key, default in self._encoded:
            if attr == version:
                continue
            try:
                value = _json(getattr(model, attr))
            except (TypeError, ValueError, OverflowError) as exc:
                raise SessionValidationError(
                    f"Session value of field {attr!r} cannot be stored ({type(exc).__name__})",
                    key=attr,
                    path=f"$.{key.decode()[1:-1]}",
                ) from exc
            if value != default:
                parts.append(key + b":" + value)
        if parts and version is not None:
            parts.insert(0, self._version_key + b":" + _json(getattr(model, version)))
        return b"{" + b",".join(parts) + b"}"

    def check(self, fields: bytes) -> None:
        """Raise `SessionValidationError` unless `fields` loads back as the same data.

        As the next load reads it: decoded, through `migrate` if there is one, validated.
        `migrate` must leave what this schema writes as it is (a record it would change
        would read back as other data: the bug of a version field at its default, which
        is not stored unless it is the `version_field`).
        """
        model = self._validated(decode_data(fields))
        if self.migrate is None:
            return
        name = self.type.__qualname__
        try:
            migrated = self.migrate(decode_data(fields))
        except Exception as exc:
            raise SessionValidationError(
                f"The migrate function of session schema {name} raised {type(exc).__name__} "
                "on data this schema writes: the next load would reset it"
            ) from exc
        if self._validated(migrated) != model:
            raise SessionValidationError(
                f"The migrate function of session schema {name} changes data this schema "
                "writes, so the next load would read other data: it must return current "
                "records as they are (is the version field stored? see version_field in "
                "docs/typed-sessions.md)"
            )

    def _from_json(self, stored: Any) -> S:
        """`stored` (decoded JSON) as the schema, as msgspec.json.decode(type=) would read it.

        ``str_keys``: JSON object keys are strings, so a ``dict[int, ...]`` field's keys
        are parsed from them, as the JSON decoder does.
        """
        model: S = msgspec.convert(stored, self.type, str_keys=True)
        return model

    def _validated(self, stored: Any) -> S:
        """`stored` as the schema, or `SessionValidationError` saying where and why, never a value.

        msgspec's own message can carry the value (``Invalid enum value 'x'``), and an
        uncaught exception's message goes to the error log, so the message keeps only
        the path and a reason that names types. An exception other than a validation
        error (raised by a ``__post_init__``) is one too, chained.
        """
        name = self.type.__qualname__
        try:
            model = self._from_json(stored)
        except msgspec.ValidationError as exc:
            path = _where(exc)
            raise SessionValidationError(
                f"Session data does not match the schema {name} at {path}: {_reason(exc)}",
                path=path,
            ) from None
        except Exception as exc:
            raise SessionValidationError(
                f"Session data does not match the schema {name}: building it raised "
                f"{type(exc).__name__}"
            ) from exc
        return model


class SchemaData(MutableMapping[str, Any]):
    """A typed session's data: its schema's Struct (`model`) plus the library's ``_`` keys.

    As a mapping, a field's key is its attribute name and is always present: deleting
    it (or `clear`) puts it back to its default. Setting a key the schema has no field
    for raises `SessionValidationError`, unless it is one of the library's keys
    (`LIBRARY_KEYS`), kept beside the fields; a stored record's other ``_`` keys are
    kept as they are.
    """

    __slots__ = ("_extras", "_schema", "_valid", "mismatch", "model")

    @property
    def schema(self) -> SessionSchema[Any]:
        """The schema this data follows."""
        return self._schema

    def __init__(
        self, schema: SessionSchema[Any], model: Any, extras: dict[str, Any], valid: bytes
    ) -> None:
        self._schema = schema
        #: The single source of truth for the fields (``sess.data``).
        self.model = model
        self._extras = extras
        self._valid = valid  # the last encoding of the fields known to match the schema
        #: The fields are the defaults because the stored record did not match the schema
        #: (the record is left as it is until a request changes the session).
        self.mismatch = False

    def __getitem__(self, key: str) -> Any:
        if key in self._schema.names:
            return getattr(self.model, key)
        return self._extras[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self._schema.names:
            setattr(self.model, key, value)
        elif key in LIBRARY_KEYS:
            self._extras[key] = value
        else:
            reserved = isinstance(key, str) and key.startswith(LIBRARY_PREFIX)
            why = " (keys starting with '_' are the library's)" if reserved else ""
            raise SessionValidationError(
                f"The session schema {self._schema.type.__qualname__} has no field {key!r}{why}",
                key=key if isinstance(key, str) else None,
            )

    def __delitem__(self, key: str) -> None:
        if key in self._schema.names:
            setattr(self.model, key, getattr(self._schema.type(), key))
        else:
            del self._extras[key]

    def __iter__(self) -> Iterator[str]:
        yield from (attr for attr, _ in self._schema.fields)
        yield from self._extras

    def __len__(self) -> int:
        return len(self._schema.fields) + len(self._extras)

    def __contains__(self, key: object) -> bool:
        return key in self._schema.names or key in self._extras

    def clear(self) -> None:
        """Every field back to its default (in place: ``sess.data`` stays the same object).

        The library's keys go too, as in an untyped session: the CSRF secret (a new one is
        made when next needed) and pending flash messages.
        """
        fresh = self._schema.type()
        for attr, _ in self._schema.fields:
            setattr(self.model, attr, getattr(fresh, attr))
        self._extras.clear()

    def encode_session_data(self) -> bytes:
        """The JSON object to store, validated against the schema if the fields changed.

        What `sanic_cookies._record.encode_data` stores for this data.

        Raises:
            SessionValidationError: A field's value does not match the schema.
            SessionSerializationError: A value cannot be encoded at all.
        """
        schema = self._schema
        fields = schema.encode_fields(self.model)
        if fields != self._valid:
            schema.check(fields)
            self._valid = fields
        if not self._extras:
            return fields
        head = encode_dict(self._extras)
        # Two JSON objects with disjoint keys (the library's start with "_"): one object.
        return head if fields == b"{}" else head[:-1] + b"," + fields[1:]


def decoded(data: Mapping[str, Any], raw: bytes) -> Mapping[str, Any]:
    """`raw` (an encoding of data like `data`) decoded into the same kind of mapping."""
    if type(data) is dict:
        return decode_data(raw)
    assert isinstance(data, SchemaData)
    return dict(data.schema.read(decode_data(raw), None))


def model_of(data: Mapping[str, Any], name: str) -> Any:
    """The Struct of a typed session's data (``sess.data``).

    Raises:
        ConfigurationError: The session has no schema.
    """
    if isinstance(data, SchemaData):
        return data.model
    raise ConfigurationError(
        f"Session {name!r} has no schema, so it has no typed data: use it as a mapping, "
        "or give it one with Session(app, schema=MyStruct) (see docs/typed-sessions.md)"
    )
