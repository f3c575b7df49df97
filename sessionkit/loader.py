"""Rows into objects: the loader, the hottest path of the library.

For each row it does one identity-map lookup and, for a new object, builds it with one
generated constructor call and a shared marker instead of a state object. Rows for
objects already in the map never overwrite loaded or modified values; they only fill
attributes that were expired (or, with ``populate_existing``, overwrite them all).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from keyword import iskeyword
from typing import TYPE_CHECKING, Any

from .gcpause import BULK, paused
from .hooks import SESSION
from .state import STATE_KEY, InstanceState, Loaded, LoadGroup, Tree, get_state

if TYPE_CHECKING:
    from .identity import IdentityMap
    from .mapping import Mapper


def load_rows(
    imap: IdentityMap,
    mapper: Mapper,
    rows: Iterable[Sequence[Any]],
    populate_existing: bool,
    modified: dict[InstanceState, Any],
    tree: Tree | None = None,
) -> list[Any]:
    """Objects for ``rows``, whose columns are exactly ``mapper.columns`` in order.

    New objects get the map's shared marker instead of a state object of their own; rows
    for objects already in the map only fill expired attributes (or overwrite all of
    them with ``populate_existing``). A class with relationships gets a marker of this
    call's own instead, naming the objects loaded together (``tree``: the loader options
    for them).
    """
    loader = mapper.statement_cache.get("loader")
    if loader is None:
        loader = mapper.statement_cache["loader"] = _compile_loader(mapper)

    sub = imap.sub(mapper)
    group = None
    if mapper.relationships:
        rows = rows if isinstance(rows, list) else list(rows)
        group = LoadGroup(list(map(mapper.row_pk, rows)), tree or {})
        if "loaded_as_persistent" not in SESSION:
            return _load_grouped(
                loader, imap, sub, mapper, rows, populate_existing, modified, group
            )
    if "loaded_as_persistent" in SESSION:
        return _load_announced(loader, imap, mapper, rows, populate_existing, modified, group)
    marker = imap.marker(mapper)
    if isinstance(rows, list) and len(rows) >= BULK:
        with paused(len(rows)):
            out: list[Any] = loader(rows, sub, marker, populate_existing, modified, imap.on_dead)
        return out
    out = loader(rows, sub, marker, populate_existing, modified, imap.on_dead)
    return out


def _load_grouped(
    loader: Callable[..., list[Any]],
    imap: IdentityMap,
    sub: dict[Any, Any],
    mapper: Mapper,
    rows: list[Any],
    populate_existing: bool,
    modified: dict[InstanceState, Any],
    group: LoadGroup,
) -> list[Any]:
    """load_rows() for a class with relationships: every object of the result, new or
    already in the map, joins this result's group (what a relationship read loads
    together, and the query's loader options)."""
    marker = Loaded(mapper, imap.session_ref, group)
    had = len(sub)
    if len(rows) >= BULK:
        with paused(len(rows)):
            out: list[Any] = loader(rows, sub, marker, populate_existing, modified, imap.on_dead)
    else:
        out = loader(rows, sub, marker, populate_existing, modified, imap.on_dead)
    if had:
        for obj in out:
            if obj is None:
                continue
            d = obj.__dict__
            st = d[STATE_KEY]
            if st is marker:
                continue
            if st.__class__ is Loaded:
                if st.session_ref is marker.session_ref:
                    d[STATE_KEY] = marker
            else:
                st.group = group
    return out


def _load_announced(
    loader: Callable[..., list[Any]],
    imap: IdentityMap,
    mapper: Mapper,
    rows: Iterable[Sequence[Any]],
    populate_existing: bool,
    modified: dict[InstanceState, Any],
    group: LoadGroup | None,
) -> list[Any]:
    """load_rows() for a session with ``loaded_as_persistent`` listeners: new objects
    get a marker of this call's own, which tells them from those already in the map."""
    marker = Loaded(mapper, imap.session_ref, group)
    out: list[Any] = loader(
        rows, imap.sub(mapper), marker, populate_existing, modified, imap.on_dead
    )
    ref = imap.session_ref
    session = None if ref is None else ref()
    if session is not None:
        seen: set[int] = set()
        for obj in out:
            if obj.__dict__.get(STATE_KEY) is marker and id(obj) not in seen:
                seen.add(id(obj))
                session.dispatch.loaded_as_persistent(session, obj)
    return out


def _merge(obj: Any, row: Sequence[Any], populate: bool, modified: dict[Any, Any]) -> None:
    merge_row(obj, get_state(obj), row, populate, modified)


def _compile_loader(mapper: Mapper) -> Callable[..., list[Any]]:
    """Generate the per-row loop for one mapper.

    Unrolling the columns turns each row into plain local variables (one tuple unpack)
    and keeps the loop free of generic per-row calls. Objects are built by a "twin" class
    with the mapped class's memory layout and no ``__setattr__`` hook: the loop stores
    the values with ordinary attribute assignments (no call per object), which CPython
    keeps in the compact per-class shared-key layout, and the object then becomes an
    instance of the mapped class. That is both faster and a third smaller than filling
    a fresh ``__dict__``. Classes whose layout does not allow it fall back to the dict.
    """
    names = [f"c{i}" for i in range(len(mapper.columns))]
    pk_names = [names[i] for i in mapper.pk_positions]
    if mapper.single_pk:
        pk_expr = pk_names[0]
    else:
        pk_expr = "(" + ", ".join(pk_names) + ",)"
    none_check = " or ".join(f"{n} is None" for n in pk_names)
    twin = _make_twin(mapper)
    if twin is not None:
        stores = "".join(
            f"\n        obj.{key} = {name}"
            for key, name in zip(mapper.attr_keys, names, strict=True)
        )
        make = (
            f"obj = new(twin){stores}\n        obj.{STATE_KEY} = marker\n"
            "        set_class(obj, '__class__', cls)"
        )
    else:
        items = [f"{key!r}: {name}" for key, name in zip(mapper.attr_keys, names, strict=True)]
        items.append(f"{STATE_KEY!r}: marker")
        make = f"obj = new(cls)\n        obj.__dict__.update({{{', '.join(items)}}})"
    src = f"""
def load(rows, sub, marker, populate, modified, on_dead):
    sub_get = sub.get
    out = []
    append = out.append
    for row in rows:
        {", ".join(names)}, = row
        if {none_check}:
            append(None)
            continue
        pk = {pk_expr}
        ref = sub_get(pk)
        if ref is not None:
            obj = ref()
            if obj is not None:
                d = obj.__dict__
                if populate or len(d) < dict_size or d[STATE_KEY].expired:
                    merge(obj, row, populate, modified)
                append(obj)
                continue
        {make}
        sub[pk] = make_ref(obj, on_dead)
        append(obj)
    return out
"""
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "cls": mapper.class_,
        "twin": twin,
        "set_class": object.__setattr__,
        "make_ref": weakref.ref,
        "STATE_KEY": STATE_KEY,
        "merge": _merge,
        "dict_size": mapper.dict_size,
    }
    exec(compile(src, f"<sessionkit loader for {mapper.class_.__name__}>", "exec"), namespace)
    loader: Callable[..., list[Any]] = namespace["load"]
    return loader


def _make_twin(mapper: Mapper) -> type | None:
    """A plain class with ``mapper.class_``'s memory layout, or None if there is none."""
    cls = mapper.class_
    keys = [*mapper.attr_keys, STATE_KEY]
    if not all(key.isidentifier() and not iskeyword(key) for key in keys):
        return None
    twin = type(f"{cls.__name__}Loader", (object,), {})
    try:
        probe: Any = object.__new__(twin)
        for key in keys:
            setattr(probe, key, None)
        object.__setattr__(probe, "__class__", cls)
    except TypeError:
        return None  # a different memory layout (__slots__, a C base class...)
    if probe.__dict__.keys() != mapper.dict_keys:
        return None
    return twin


def merge_row(
    obj: Any,
    state: InstanceState,
    row: Sequence[Any],
    populate_existing: bool,
    modified: dict[InstanceState, Any],
) -> None:
    """A row for an object already in the identity map."""
    d = obj.__dict__
    keys = state.mapper.attr_keys
    if populate_existing:
        d.update(zip(keys, row, strict=False))
        state.expired = None
        state.clear_history()
        modified.pop(state, None)
        return
    # Attributes missing from __dict__ (expired, or never loaded) come from the row;
    # loaded and modified values stay.
    for k, v in zip(keys, row, strict=False):
        if k not in d:
            d[k] = v
    state.expired = None
