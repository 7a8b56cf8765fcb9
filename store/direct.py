"""Prebuilt Core statements run on the driver's own connection, past SQLAlchemy's per-statement machinery.

SQLite answers a primary-key SELECT or a one-row INSERT in 5-10 µs; through a SQLAlchemy Connection the
same statement costs about 60 µs more (execution context, cursor wrapping, result metadata, events).
The statements every request makes are built once at import (see store/service's `_LOOKUPS`); those
marked with `DIRECT` are compiled here once per set of parameter names, by SQLAlchemy's own compiler
for the SQLite dialect, and then run with `sqlite3` directly: a primary-key read of an incident went
from about 100 to 40 µs. The values go through the same type processing SQLAlchemy would apply (each
column type's `bind_processor` and `result_processor` for the dialect), so what is stored and what is
read back are the same either way.

SQLite runs them here (`store/sqlite.py`'s inline session and connection, and store/writeback.py);
PostgreSQL runs the same plans, compiled for its dialect, on asyncpg (store/pg.py). Statements run this
way do not pass through SQLAlchemy's cursor events; `Database.trace()` sees both kinds.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session, make_transient_to_detached

# `statement.execution_options(**DIRECT)` marks a statement for this path. Mark only statements built once
# (module constants): each is compiled and kept for good, by identity.
DIRECT = {"tocsin_direct": True}
TRACERS: list[Callable[[str], None]] = []  # Database.trace(): told the SQL of each statement run here


def marked(statement: Any) -> bool:
    return bool(statement.get_execution_options().get("tocsin_direct"))


class Plan:
    """One statement compiled for a dialect, with the processors for its parameters and its columns."""

    __slots__ = ("sql", "names", "defaults", "binds", "converts", "record", "entity")

    def __init__(self, statement: Any, dialect: Dialect, keys: Sequence[str] | None) -> None:
        # inline(): no RETURNING of the new key, which PostgreSQL's compiler would add (nobody reads it)
        compiling = statement.inline() if statement.is_insert else statement
        compiled = compiling.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.defaults: dict[str, Any] = {}  # values the statement carries itself (a LIMIT's)
        if not statement.is_insert:
            self.defaults.update((n, v) for n, v in compiled.params.items() if v is not None)
        else:  # columns left out get their default, as SQLAlchemy would give them
            for name in set(self.names).difference(keys or ()):
                default = statement.table.c[name].default
                if default is None or not default.is_scalar:
                    raise ValueError(f"{statement.table.name}.{name} needs a value (no scalar default)")
                self.defaults[name] = default.arg
        self.binds = tuple(
            compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names
        )
        if statement.is_select:
            columns = list(statement.selected_columns)
        else:  # an INSERT's RETURNING columns, if it has any
            columns = list(statement.exported_columns) if statement.is_insert else []
        processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        # (position, processor, whether a NULL needs it): most of an incident's 53 columns need none, and
        # most of its 22 datetimes are NULL, so a row converts only those (20 to 13 µs for an incident's).
        self.converts = tuple(
            (position, processor, not _keeps_null(processor))
            for position, processor in enumerate(processors)
            if processor is not None
        )
        self.record = namedtuple("Row", [c.key for c in columns]) if columns else None  # type: ignore[misc]
        described = getattr(statement, "column_descriptions", []) if statement.is_select else []
        # the mapped class when the statement selects its objects (select(Incident)), else None
        self.entity = (
            described[0]["entity"]
            if len(described) == 1 and described[0]["expr"] is described[0]["entity"]
            else None
        )

    def arguments(self, params: dict[str, Any]) -> tuple[Any, ...]:
        values = (params[n] if n in params else self.defaults[n] for n in self.names)
        return tuple(v if p is None else p(v) for v, p in zip(values, self.binds, strict=True))

    def row(self, values: Sequence[Any]) -> Any:
        converted = list(values)
        for position, processor, on_null in self.converts:
            value = converted[position]
            if value is not None or on_null:
                converted[position] = processor(value)
        return self.record._make(converted)  # type: ignore[union-attr]


def _keeps_null(processor: Callable[[Any], Any]) -> bool:
    """Whether `processor` turns NULL into None (true of every column type the store uses), so a row may
    leave its NULLs as they are."""
    try:
        return processor(None) is None
    except Exception:
        return False


_plans: dict[tuple[int, str, tuple[str, ...] | None], tuple[Any, Plan]] = {}


def plan(statement: Any, dialect: Dialect, keys: Sequence[str] | None = None) -> Plan:
    """The statement's plan for `dialect`; INSERTs without values are compiled for the given parameter
    names."""
    key = (id(statement), dialect.name, tuple(keys) if keys is not None else None)
    found = _plans.get(key)
    if found is None:
        found = _plans[key] = (statement, Plan(statement, dialect, keys))  # holds the statement: id stays
    return found[1]


def loads_objects(statement: Any, params: Any, kw: dict[str, Any], dialect: Dialect) -> bool:
    """A marked statement selecting mapped objects (the locked lookups), run with plain parameters: its
    rows are loaded here and adopted into the session (`adopt`)."""
    return params is not None and not kw and marked(statement) and _entity(statement, dialect) is not None


def runs_rows(statement: Any, params: Any, kw: dict[str, Any], dialect: Dialect) -> bool:
    """A marked statement that `execute` may run here: one whose rows are columns, not mapped objects
    (those come back from SQLAlchemy's `execute` as rows of objects, which this module does not make)."""
    return params is not None and not kw and marked(statement) and _entity(statement, dialect) is None


def _entity(statement: Any, dialect: Dialect) -> Any:
    """The mapped class a marked SELECT loads objects of, else None (INSERTs and UPDATEs are not planned
    here: their plans depend on the parameter names)."""
    return plan(statement, dialect).entity if statement.is_select else None


def adopt(session: Session, statement: Any, row: Any) -> Any:
    """The object in `row` (a row of the statement's mapped class's columns) as the session's own: the one
    it already holds (as the ORM would return it, unrefreshed), else a new one, every column set and none
    changed, as if just loaded."""
    entity = _entity(statement, session.get_bind().dialect)
    values = row._asdict()
    mapper = entity.__mapper__  # its identity key: 0.2 µs, against 2.3 through Session.identity_key
    held = session.identity_map.get(
        mapper.identity_key_from_primary_key(tuple(values[c.key] for c in mapper.primary_key))
    )
    if held is not None:
        return held
    instance = entity()
    # As the ORM's loader does: values into the instance's dict, past the attribute events (setattr on
    # each of an incident's columns cost about 150 µs); make_transient_to_detached marks them loaded.
    instance.__dict__.update(values)
    make_transient_to_detached(instance)
    session.add(instance)
    return instance


def planned(statement: Any, dialect: Dialect, params: dict[str, Any] | list[dict[str, Any]]) -> Plan:
    """The plan for running `statement` with `params` (one dict, or a non-empty list of them), after
    telling the tracers."""
    first = params[0] if isinstance(params, list) else params
    compiled = plan(statement, dialect, list(first) if statement.is_insert else None)
    for tracer in TRACERS:
        tracer(compiled.sql)
    return compiled


class Result:
    """What callers read from a statement's result: its rows (iteration, `first()`) and `rowcount`."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def first(self) -> Any:
        return self.rows[0] if self.rows else None


def execute(connection: Connection, statement: Any, params: Any) -> Any:
    """`statement` on `connection`: on sqlite3 directly when it is marked and the store is SQLite,
    otherwise through SQLAlchemy."""
    if params is None or connection.dialect.name != "sqlite" or not marked(statement):
        return connection.execute(statement, params)
    return run(connection, statement, params)


def run(connection: Connection, statement: Any, params: dict[str, Any] | list[dict[str, Any]]) -> Result:
    """Run `statement` on the SQLite connection's sqlite3 connection, inside whatever transaction it is in."""
    many = isinstance(params, list)
    if many and not params:
        return Result([], 0)
    driver: sqlite3.Connection = connection.connection.driver_connection  # type: ignore[assignment]
    compiled = planned(statement, connection.dialect, params)
    try:
        if many:
            cursor = driver.executemany(compiled.sql, [compiled.arguments(p) for p in params])  # type: ignore[union-attr]
        else:
            cursor = driver.execute(compiled.sql, compiled.arguments(params))  # type: ignore[arg-type]
        rows = [compiled.row(values) for values in cursor.fetchall()] if compiled.record else []
        return Result(rows, cursor.rowcount)
    except sqlite3.Error as error:  # as SQLAlchemy would raise it, so handlers treat it the same
        raise exc.DBAPIError.instance(compiled.sql, None, error, sqlite3.Error) from error
