"""``@validates`` (docs/behaviour.md, models-6 and models-7): attribute validators on
sessionkit and on the ORM.

A validator runs on what the application assigns (constructor keywords, ``obj.attr =``,
``Session.merge()``), stores what it returns and, when it raises, leaves the object as it
was; it never runs on values loaded from the database. Each rule runs on the three ways to
map a class: ``declarative_base()`` with ``Column``, ``DeclarativeBase`` with ``Mapped[]``,
and ``map_imperatively()``.

No ``from __future__ import annotations`` here: the typed classes are declared inside the
scenarios with *that run's* ``Mapped``, which a string annotation could not find.
"""

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy.orm as orm
from reference import SK, Api, Obs, compare
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, select
from sqlalchemy.exc import ArgumentError, InvalidRequestError

import sessionkit
from sessionkit.attributes import instance_setattr, validated_setattr
from sessionkit.declarative import dataclass_setattr
from support import behind_the_back, by_unique_label, event_kinds, unrecorded_rows

KINDS = ("declarative", "typed", "imperative")

Calls = list[tuple[Any, ...]]


def validates_of(api: Api) -> Any:
    return orm.validates if api.name == "orm" else sessionkit.validates


def map_imperatively_of(api: Api) -> Callable[[type, Table], Any]:
    if api.name == "orm":
        return orm.registry().map_imperatively
    return sessionkit.map_imperatively


def checker(api: Api, calls: Calls) -> Callable[[Any, str, Any], Any]:
    """The validator of the scenarios: records each call with what the object held then,
    strips strings, lower-cases an email and rejects one without '@'."""

    def check(self: Any, key: str, value: Any) -> Any:
        calls.append((key, value, api.visible(self)))
        if key == "email" and value is not None and "@" not in value:
            raise ValueError(f"{value!r} is not an email address")
        if key == "id" and value is not None and value < 0:
            raise ValueError(f"{value!r} is not a valid id")
        if isinstance(value, str):
            value = value.strip()
            return value.lower() if key == "email" else value
        return value

    return check


def user_class(
    api: Api, kind: str, calls: Calls, names: tuple[str, ...] = ("email",)
) -> tuple[MetaData, Any]:
    """``User(id, name, email)`` mapped the ``kind`` way, with ``checker`` validating
    ``names`` (none: a plain method); its MetaData, for create_all()."""
    validate = checker(api, calls)
    if names:
        validate = validates_of(api)(*names)(validate)
    if kind == "declarative":
        Base = api.declarative_base()

        class User(Base):
            __tablename__ = "user_account"
            id = Column(Integer, primary_key=True)
            name = Column(String(30))
            email = Column(String(60))
            validate_fields = validate

        return Base.metadata, User
    if kind == "typed":
        Mapped, mapped_column = api.typed.Mapped, api.typed.mapped_column

        class TypedBase(api.typed.DeclarativeBase):  # type: ignore[name-defined,misc]
            pass

        class User(TypedBase):  # type: ignore[no-redef]
            __tablename__ = "user_account"
            id: Mapped[int] = mapped_column(primary_key=True)
            name: Mapped[str | None] = mapped_column(String(30))
            email: Mapped[str | None] = mapped_column(String(60))
            validate_fields = validate

        return TypedBase.metadata, User
    metadata = MetaData()
    table = Table(
        "user_account",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("name", String(30)),
        Column("email", String(60)),
    )

    class User:  # type: ignore[no-redef]
        validate_fields = validate

        def __init__(self, **kw: Any) -> None:
            for k, v in kw.items():
                setattr(self, k, v)

    map_imperatively_of(api)(User, table)
    return metadata, User


def history(api: Api, obj: Any, key: str) -> tuple[Any, ...]:
    h = api.inspect(obj).attrs[key].history
    return (list(h.added), list(h.unchanged), list(h.deleted))


@pytest.mark.parametrize("kind", KINDS)
def test_assignments_are_validated(engine: Engine, ref_engine: Engine, kind: str) -> None:
    """models-6: constructor keywords and every set, the returned value stored; a flush
    and a commit call nothing."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        calls: Calls = []
        metadata, User = user_class(api, kind, calls)
        metadata.create_all(engine)
        obs.rec.clear()
        sandy = User(name="sandy", email="  Sandy@Example.COM ")
        obs.append(("constructor", calls[:], api.visible(sandy)))
        calls.clear()
        sandy.email = "S@X.ORG"
        sandy.name = "  sandy  "  # not validated: stored as given
        obs.append(("transient set", calls[:], api.visible(sandy)))
        calls.clear()
        session = api.Session(engine)
        session.add(sandy)
        session.commit()
        obs.sql("commit: INSERT")
        obs.append(("flush and commit call nothing", calls[:]))
        sandy.email = "New@X.org"  # expired, not a key: no load before the validator
        obs.sql("set on an expired object: no SQL")
        obs.append(("expired set", calls[:], api.visible(sandy)))
        calls.clear()
        obs.append(("history", history(api, sandy, "email"), api.inspect(sandy).modified))
        session.commit()
        obs.sql("commit: UPDATE")
        obs.append(
            ("stored", unrecorded_rows(obs, engine, "SELECT id, name, email FROM user_account"))
        )
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert facts["constructor"][1] == [("email", "  Sandy@Example.COM ", {"name": "sandy"})]
    assert facts["constructor"][2] == {"name": "sandy", "email": "sandy@example.com"}
    assert facts["transient set"][2]["email"] == "s@x.org"
    assert facts["flush and commit call nothing"][1] == []
    assert facts["expired set"][1] == [("email", "New@X.org", {})]
    assert facts["stored"][1] == [(1, "  sandy  ", "new@x.org")]


@pytest.mark.parametrize("kind", KINDS)
def test_a_raising_validator_rejects_the_assignment(
    engine: Engine, ref_engine: Engine, kind: str
) -> None:
    """models-6: the error reaches the caller; nothing is stored and nothing is marked
    changed, on persistent and pending objects and in the constructor."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        calls: Calls = []
        metadata, User = user_class(api, kind, calls)
        metadata.create_all(engine)
        behind_the_back(obs, engine, "INSERT INTO user_account VALUES (1, 'sandy', 's@x')")
        session = api.Session(engine)
        sandy = session.get(User, 1)
        obs.rec.clear()
        err = obs.error("persistent", lambda: setattr(sandy, "email", "nope"))
        obs.append(("persistent: message", str(err)))
        obs.append(
            (
                "persistent: unchanged",
                api.visible(sandy),
                api.inspect(sandy).modified,
                sandy in session.dirty,
                session.is_modified(sandy),
                history(api, sandy, "email"),
            )
        )
        sandy.name = "changed"
        obs.error("after another change", lambda: setattr(sandy, "email", "nope"))
        obs.append(("other change kept", api.visible(sandy), history(api, sandy, "email")))
        session.flush()
        obs.sql("flush: only the other change")
        pending = User(id=2, name="p", email="p@x")
        session.add(pending)
        obs.error("pending", lambda: setattr(pending, "email", "nope"))
        obs.append(("pending: unchanged", api.visible(pending)))
        obs.error("constructor", lambda: User(name="bad", email="nope"))
        obs.append(("constructor: nothing added", len(session.new)))
        session.commit()
        obs.sql("commit")
        obs.append(
            (
                "stored",
                unrecorded_rows(
                    obs, engine, "SELECT id, name, email FROM user_account ORDER BY id"
                ),
            )
        )
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert facts["persistent"][1:] == ("raises", "ValueError")
    assert facts["persistent: unchanged"][1:] == (
        {"id": 1, "name": "sandy", "email": "s@x"},
        False,
        False,
        False,
        ([], ["s@x"], []),
    )
    assert facts["stored"][1] == [(1, "changed", "s@x"), (2, "p", "p@x")]


@pytest.mark.parametrize("kind", KINDS)
def test_loading_never_validates(engine: Engine, ref_engine: Engine, kind: str) -> None:
    """models-6: rows are loaded as stored, even values the validator would reject:
    get(), select(), refresh(), an expired attribute, populate_existing."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        calls: Calls = []
        metadata, User = user_class(api, kind, calls)
        metadata.create_all(engine)
        behind_the_back(
            obs, engine, "INSERT INTO user_account VALUES (1, ' Sandy ', 'NOT AN EMAIL')"
        )
        session = api.Session(engine)
        sandy = session.get(User, 1)
        obs.append(("get", api.visible(sandy)))
        session.scalars(select(User)).all()
        session.refresh(sandy)
        session.expire(sandy)
        obs.append(("expired read", sandy.email))
        session.execute(select(User).execution_options(populate_existing=True)).all()
        session.commit()
        obs.append(("after commit", sandy.name))
        obs.append(("no calls", calls[:]))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert facts["get"][1] == {"id": 1, "name": " Sandy ", "email": "NOT AN EMAIL"}
    assert facts["no calls"][1] == []


@pytest.mark.parametrize("kind", KINDS)
def test_merge_validates_unless_load_is_false(
    engine: Engine, ref_engine: Engine, kind: str
) -> None:
    """models-6 / attach-6: merge() sets each loaded value of the given object on the
    session's one, through the validators; merge(load=False) copies without them."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        calls: Calls = []
        metadata, User = user_class(api, kind, calls, names=("name", "email"))
        metadata.create_all(engine)
        behind_the_back(obs, engine, "INSERT INTO user_account VALUES (1, 'sandy', 's@x')")
        session = api.Session(engine)
        sandy = session.get(User, 1)
        given = User(id=1, name=" Sandy ", email="S@Y")
        calls.clear()
        obs.rec.clear()
        merged = session.merge(given)
        obs.sql("merge into a persistent object: no SQL")
        obs.append(("into persistent", calls[:], merged is sandy, api.visible(sandy)))
        calls.clear()
        new = User(id=7, name="patrick", email="P@Y")
        calls.clear()
        created = session.merge(new)
        obs.sql("merge of a new row: SELECT")
        obs.append(("new", calls[:], created is new, api.visible(created), api.state(created)))
        calls.clear()
        session.commit()
        other = api.Session(engine)
        loaded = other.get(User, 7)
        other.close()
        third = api.Session(engine)
        calls.clear()
        copy = third.merge(loaded, load=False)
        obs.append(("load=False", calls[:], api.visible(copy)))
        session.close()
        third.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert [c[:2] for c in facts["into persistent"][1]] == [("name", "Sandy"), ("email", "s@y")]
    assert facts["load=False"][1] == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_primary_key_validator(engine: Engine, ref_engine: Engine, kind: str) -> None:
    """models-6: a validator on the key works; on an expired object the old key is loaded
    first (SELECT, then the validator sees the row), a detached one raises
    DetachedInstanceError before the validator runs."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        calls: Calls = []
        metadata, User = user_class(api, kind, calls, names=("id",))
        metadata.create_all(engine)
        obs.rec.clear()
        sandy = User(id=5, name="sandy")  # auto's key comes from the database
        session = api.Session(engine)
        session.add(sandy)
        obs.error("constructor: rejected", lambda: User(id=-1))
        auto = User(name="auto")
        session.add(auto)
        session.commit()
        obs.sql("commit: INSERTs")
        obs.append(("ctor, flush and commit", calls[:]))
        calls.clear()
        obs.error("expired: rejected", lambda: setattr(sandy, "id", -5))
        obs.sql("expired: the key is loaded first")
        obs.append(("expired: validator saw the row", calls[:], api.inspect(sandy).modified))
        calls.clear()
        sandy.id = 10
        session.commit()
        obs.sql("commit: UPDATE of the key")
        session.close()
        calls.clear()
        obs.error("detached and expired", lambda: setattr(auto, "id", 20))
        obs.append(("detached: no call", calls[:]))

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert event_kinds(facts["expired: the key is loaded first"][1]) == ["BEGIN", "SELECT"]
    assert facts["expired: validator saw the row"][1] == [
        ("id", -5, {"id": 5, "name": "sandy", "email": None})
    ]
    assert facts["detached and expired"][1:] == ("raises", "DetachedInstanceError")


@pytest.mark.parametrize("kind", KINDS)
def test_del_does_not_validate(engine: Engine, ref_engine: Engine, kind: str) -> None:
    """models-6: ``del obj.attr`` removes the value without calling the validator. (The
    ORM's flush then fails with KeyError; sessionkit's writes NULL: not compared.)"""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        calls: Calls = []
        metadata, User = user_class(api, kind, calls)
        metadata.create_all(engine)
        behind_the_back(obs, engine, "INSERT INTO user_account VALUES (1, 'sandy', 's@x')")
        session = api.Session(engine)
        sandy = session.get(User, 1)
        del sandy.email
        obs.append(("no call", calls[:], api.visible(sandy), api.inspect(sandy).modified))
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert facts["no call"][1:] == ([], {"id": 1, "name": "sandy"}, True)


def test_dataclass_constructor(engine: Engine, ref_engine: Engine) -> None:
    """models-6 / models-3: a MappedAsDataclass ``__init__`` validates what it assigns:
    given arguments and default_factory values, not scalar defaults left out (they are
    not assigned) nor init=False columns."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        calls: Calls = []
        Mapped, mapped_column = api.typed.Mapped, api.typed.mapped_column

        class Base(api.typed.MappedAsDataclass, api.typed.DeclarativeBase):  # type: ignore[name-defined,misc]
            pass

        class Note(Base):
            __tablename__ = "notes"
            id: Mapped[int] = mapped_column(primary_key=True, init=False)
            title: Mapped[str] = mapped_column(String(30))
            email: Mapped[str | None] = mapped_column(String(30), default=None)
            tag: Mapped[str] = mapped_column(String(30), default=" T ")
            slug: Mapped[str] = mapped_column(String(30), default_factory=lambda: " F ")
            kept: Mapped[str | None] = mapped_column(String(30), init=False, default="k")

            validate = validates_of(api)("title", "email", "tag", "slug", "kept", "id")(
                checker(api, calls)
            )

        Base.metadata.create_all(engine)
        note = Note(title=" A ")
        obs.append(("defaults left out", calls[:], api.visible(note), note.tag, note.kept))
        calls.clear()
        obs.error("rejected", lambda: Note(title="b", email="nope"))
        calls.clear()
        given = Note(title="b", email="B@X", tag=" t ")
        obs.append(("given", [c[:2] for c in calls], api.visible(given)))
        session = api.Session(engine)
        session.add_all([note, given])
        session.commit()
        obs.append(
            (
                "stored",
                unrecorded_rows(
                    obs, engine, "SELECT title, email, tag, slug, kept FROM notes ORDER BY id"
                ),
            )
        )
        session.close()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert [c[:2] for c in facts["defaults left out"][1]] == [("title", " A "), ("slug", " F ")]
    assert facts["rejected"][1:] == ("raises", "ValueError")
    assert facts["stored"][1] == [("A", None, " T ", "F", "k"), ("b", "b@x", "t", "F", "k")]


def test_validators_come_through_the_class_hierarchy(engine: Engine, ref_engine: Engine) -> None:
    """models-6: a mixin's validator applies; a subclass method of the same name replaces
    it (an undecorated one switches it off, a decorated one may call super())."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        calls: Calls = []
        validates = validates_of(api)
        Base = api.declarative_base()

        class Named:
            @validates("name")
            def validate_name(self, key: str, value: Any) -> Any:
                calls.append(("mixin", value))
                return value.strip()

        class Plain(Named, Base):
            __tablename__ = "plain"
            id = Column(Integer, primary_key=True)
            name = Column(String(30))

        class Off(Named, Base):
            __tablename__ = "off"
            id = Column(Integer, primary_key=True)
            name = Column(String(30))

            def validate_name(self, key: str, value: Any) -> Any:
                calls.append(("never", value))
                return value

        class Chained(Named, Base):
            __tablename__ = "chained"
            id = Column(Integer, primary_key=True)
            name = Column(String(30))

            @validates("name")
            def validate_name(self, key: str, value: Any) -> Any:
                calls.append(("subclass", value))
                return super().validate_name(key, value).upper()

        for cls in (Plain, Off, Chained):
            obj = cls(name=" x ")
            obs.append((cls.__name__, calls[:], api.visible(obj)))
            calls.clear()

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert facts["Plain"][1:] == ([("mixin", " x ")], {"name": "x"})
    assert facts["Off"][1:] == ([], {"name": " x "})
    assert facts["Chained"][1:] == ([("subclass", " x "), ("mixin", " x ")], {"name": "X"})


def test_inspect_shows_the_validators(engine: Engine, ref_engine: Engine) -> None:
    """``inspect(User).validators`` is the ORM's: attribute -> (method, options)."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        _, User = user_class(api, "declarative", [], names=("name", "email"))
        _, Plain = user_class(api, "declarative", [], names=())
        validators = api.inspect(User).validators
        method = User.__dict__["validate_fields"]
        obs.append(("keys", sorted(validators)))
        obs.append(("method", [fn is method for fn, _ in validators.values()]))
        obs.append(("options", [opts for _, opts in validators.values()]))
        obs.append(("none", dict(api.inspect(Plain).validators)))

    compare(scen, engine, ref_engine)


def test_two_validators_for_one_attribute(engine: Engine, ref_engine: Engine) -> None:
    """models-6: InvalidRequestError with the ORM's words, then the two methods."""

    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        validates = validates_of(api)
        Base = api.declarative_base()

        def declare_two() -> None:
            class Twice(Base):
                __tablename__ = "twice"
                id = Column(Integer, primary_key=True)
                name = Column(String(30))

                @validates("name")
                def check_a(self, key: str, value: Any) -> Any:
                    return value

                @validates("name")
                def check_b(self, key: str, value: Any) -> Any:
                    return value

        def declare_same() -> None:
            class Same(Base):
                __tablename__ = "same"
                id = Column(Integer, primary_key=True)
                name = Column(String(30))

                @validates("name", "name")
                def check(self, key: str, value: Any) -> Any:
                    return value

        for label, declare, words in [
            ("two methods", declare_two, "Mapper[Twice(twice)] already exists"),
            ("one method, the name twice", declare_same, "Mapper[Same(same)] already exists"),
        ]:
            err = obs.error(label, declare)
            obs.append(
                (
                    f"{label}: words",
                    str(err).startswith(
                        "A validation function for mapped attribute 'name' on mapper " + words
                    ),
                )
            )

    facts = by_unique_label(compare(scen, engine, ref_engine))
    assert facts["two methods"][1:] == ("raises", "InvalidRequestError")
    assert facts["two methods: words"][1] is True


def test_two_validators_message() -> None:
    Base = sessionkit.declarative_base()
    with pytest.raises(InvalidRequestError) as info:

        class Twice(Base):
            __tablename__ = "twice"
            id = Column(Integer, primary_key=True)
            name = Column(String(30))

            @sessionkit.validates("name")
            def check_a(self, key: str, value: Any) -> Any:
                return value

            @sessionkit.validates("name")
            def check_b(self, key: str, value: Any) -> Any:
                return value

    assert str(info.value) == (
        "A validation function for mapped attribute 'name' on mapper Mapper[Twice(twice)] "
        "already exists: Twice.check_a and Twice.check_b both validate it. Keep one validator "
        "per attribute (one method may validate several: @validates('a', 'b'))."
    )
    assert "twice" not in Base.metadata.tables


def test_an_unmapped_name_is_refused() -> None:
    """models-7: the ORM ignores a validator naming no mapped attribute (a typo leaves
    the attribute unchecked); sessionkit refuses the class, and registers no table."""
    Base = sessionkit.declarative_base()

    class Mixin:
        @sessionkit.validates("emial")
        def validate_email(self, key: str, value: Any) -> Any:
            return value

    with pytest.raises(ArgumentError) as info:

        class User(Mixin, Base):
            __tablename__ = "user_account"
            id = Column(Integer, primary_key=True)
            email = Column(String(60))

    assert str(info.value) == (
        "User.validate_email (from Mixin) is a @validates method for 'emial', but 'emial' is not "
        "a mapped attribute of User, so it would never be called; the mapped attributes are "
        "id, email. Correct the name, or map a column under it."
    )
    assert "user_account" not in Base.metadata.tables

    class Fixed(Base):  # the corrected class can be declared on the same MetaData
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        email = Column(String(60))

    table = Table("plain_user", MetaData(), Column("id", Integer, primary_key=True))

    class Plain:
        @sessionkit.validates("name")
        def validate_name(self, key: str, value: Any) -> Any:
            return value

    with pytest.raises(ArgumentError, match="'name' is not a mapped attribute of Plain"):
        sessionkit.map_imperatively(Plain, table)
    assert "__sk_mapper__" not in Plain.__dict__ and "id" not in Plain.__dict__

    # What the ORM does with the same class: maps it, and never calls the method.
    class OrmBase(orm.DeclarativeBase):
        pass

    class OrmUser(OrmBase):
        __tablename__ = "user_account"
        id: orm.Mapped[int] = orm.mapped_column(primary_key=True)

        @orm.validates("emial")
        def validate_email(self, key: str, value: Any) -> Any:
            raise AssertionError("never called")

    assert "emial" in orm.class_mapper(OrmUser).validators


def test_decorator_arguments() -> None:
    """models-7: include_backrefs is accepted (no effect); include_removes=True, no names,
    a bare @validates and a non-string name are refused at once."""
    v = sessionkit.validates
    with pytest.raises(ArgumentError, match="relationships and collections, which sessionkit"):
        v("name", include_removes=True)
    with pytest.raises(ArgumentError, match=r"write @validates\('email'\)"):
        v()
    with pytest.raises(ArgumentError, match=r"with parentheses and the attribute name"):

        @v  # type: ignore[arg-type]
        def bare(self: Any, key: str, value: Any) -> Any:
            return value

    with pytest.raises(ArgumentError, match=r"not @validates\(User.email\)"):
        v(Column("email", String(60)))  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="decorates a method def name"):
        v("name")(staticmethod(lambda self, key, value: value))  # type: ignore[arg-type]

    calls: Calls = []
    Base = sessionkit.declarative_base()

    class User(Base):
        __tablename__ = "user_account"
        id = Column(Integer, primary_key=True)
        name = Column(String(30))
        check = v("name", include_backrefs=False)(checker(SK, calls))

    assert User(name=" x ").name == "x"
    assert User.__sk_mapper__.validators["name"][1] == {
        "include_removes": False,
        "include_backrefs": False,
    }


def test_the_orm_decorator_is_refused_on_an_imperative_class() -> None:
    """errors-7: map_imperatively() refuses a method marked by the ORM's @validates
    (declarative classes are refused by the class-body check)."""
    table = Table("orm_marked", MetaData(), Column("id", Integer, primary_key=True))

    class Marked:
        @orm.validates("id")
        def validate_id(self, key: str, value: Any) -> Any:
            return value

    with pytest.raises(ArgumentError, match="Import validates from sessionkit instead"):
        sessionkit.map_imperatively(Marked, table)


def test_a_class_without_validators_pays_nothing() -> None:
    """models-6: the validating __setattr__ is installed only on classes with validators;
    the others keep the plain one and the constructor's bulk store."""
    for kind in KINDS:
        _, Plain = user_class(SK, kind, [], names=())
        _, Checked = user_class(SK, kind, [], names=("email",))
        assert Plain.__setattr__ is instance_setattr
        assert Checked.__setattr__ is validated_setattr
        assert Plain.__sk_mapper__.validator_fns == {}
        assert Plain.__sk_mapper__.init_keys == {"id", "name", "email"}
        assert Checked.__sk_mapper__.init_keys == {"id", "name"}

    class DataBase(sessionkit.MappedAsDataclass, sessionkit.DeclarativeBase):
        pass

    class Note(DataBase):
        __tablename__ = "notes"
        id: sessionkit.Mapped[int] = sessionkit.mapped_column(primary_key=True)

    assert Note.__setattr__ is dataclass_setattr
