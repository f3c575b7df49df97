"""Core's ``sqlalchemy.inspect()`` sees sessionkit objects and classes.

Core finds a registrar by walking ``type(subject).__mro__``: each mapped class is
registered for its instances when it is mapped (this needs ``map_imperatively`` to call
``portable.class_mapped``), declarative classes are inspected through their metaclass.
``type`` and ``object`` stay the ORM's, in whichever order the two are imported.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import weakref
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
import sqlalchemy.orm as orm
from models import setup_users
from reference import Api, Obs, compare
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, inspection
from sqlalchemy.exc import NoInspectionAvailable

import sessionkit
from sessionkit.exc import ArgumentError
from sessionkit.inspection import InstanceInspection, register_class_inspection
from sessionkit.portable import ON_MAPPED
from support import by_label

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ("transient", "pending", "persistent", "deleted", "detached")


def core_flags(obj: Any) -> list[str]:
    insp = sqlalchemy.inspect(obj)
    return [n for n in FLAGS if getattr(insp, n)]


def table(name: str) -> Table:
    return Table(
        name, MetaData(), Column("id", Integer, primary_key=True), Column("name", String(20))
    )


def test_core_inspect_follows_the_lifecycle(engine: Engine, ref_engine: Engine) -> None:
    def scen(api: Api, engine: Engine, obs: Obs) -> None:
        User = setup_users(api, engine)
        session = api.Session(engine)
        new = User(name="new")
        obs.append(("transient", core_flags(new)))
        session.add(new)
        obs.append(("pending", core_flags(new)))
        sandy = session.get(User, 1)
        obs.append(("persistent", core_flags(sandy), core_flags(new)))
        session.delete(sandy)
        session.flush()
        obs.append(("deleted", core_flags(sandy)))
        session.commit()
        obs.append(("detached", core_flags(sandy)))
        insp = sqlalchemy.inspect(new)
        obs.append(("key", insp.identity, insp.object is new))
        session.close()

    f = by_label(compare(scen, engine, ref_engine))
    assert f["transient"][1] == ["transient"]
    assert f["pending"][1] == ["pending"]
    assert f["persistent"][1:] == (["persistent"], ["persistent"])
    assert f["deleted"][1] == ["deleted"]
    assert f["detached"][1] == ["detached"]
    assert f["key"][1:] == ((4,), True)


def test_core_inspect_of_an_instance_is_sessionkits() -> None:
    class Plain:
        pass

    sessionkit.map_imperatively(Plain, table("plain_instance"))
    Base = sessionkit.declarative_base()

    class Declared(Base):
        __tablename__ = "declared_instance"
        id = Column(Integer, primary_key=True)

    class Typed(sessionkit.DeclarativeBase):
        pass

    class Item(Typed):
        __tablename__ = "typed_instance"
        id: sessionkit.Mapped[int] = sessionkit.mapped_column(primary_key=True)

    for obj in (Plain(), Declared(), Item()):
        insp = sqlalchemy.inspect(obj)
        assert isinstance(insp, InstanceInspection), type(obj)
        assert insp.object is obj and insp.transient
        assert insp.mapper is sessionkit.inspect(type(obj))


def test_core_inspect_of_a_declarative_class_is_its_mapper() -> None:
    Base = sessionkit.declarative_base()

    class Declared(Base):
        __tablename__ = "declared_class"
        id = Column(Integer, primary_key=True)

    class Typed(sessionkit.DeclarativeBase):
        pass

    class Item(Typed):
        __tablename__ = "typed_class"
        id: sessionkit.Mapped[int] = sessionkit.mapped_column(primary_key=True)

    for cls in (Declared, Item):
        assert sqlalchemy.inspect(cls) is sessionkit.inspect(cls) is cls.__sk_mapper__
    for base in (Base, Typed, sessionkit.DeclarativeBase):
        # Not mapped: Core goes on to the ORM's registrars, which find nothing either.
        assert sqlalchemy.inspect(base, raiseerr=False) is None
        with pytest.raises(NoInspectionAvailable):
            sqlalchemy.inspect(base)
    assert sqlalchemy.inspect(orm.declarative_base(), raiseerr=False) is None  # the ORM's too


class AppMeta(type):
    """An application's metaclass for classes it maps imperatively."""


def test_register_class_inspection_of_an_application_metaclass() -> None:
    class Tagged(metaclass=AppMeta):
        pass

    class Plain:
        pass

    register_class_inspection(AppMeta)
    register_class_inspection(AppMeta)  # again: a no-op
    sessionkit.map_imperatively(Tagged, table("tagged"))
    sessionkit.map_imperatively(Plain, table("plain_class"))
    assert sqlalchemy.inspect(Tagged) is sessionkit.inspect(Tagged)
    # A class whose type is plain ``type``: only the ORM's registrar for type is asked.
    assert sqlalchemy.inspect(Plain, raiseerr=False) is None
    assert sessionkit.inspect(Plain) is Plain.__sk_mapper__


def test_register_class_inspection_refuses_what_it_must_not_take() -> None:
    with pytest.raises(ArgumentError, match=r"register_class_inspection\(type\)"):
        register_class_inspection(type)
    with pytest.raises(ArgumentError, match="takes a metaclass"):
        register_class_inspection(str)

    class TakenMeta(type):
        pass

    inspection._inspects(TakenMeta)(lambda cls: None)
    with pytest.raises(ArgumentError, match=r"TakenMeta is already registered"):
        register_class_inspection(TakenMeta)


def test_type_and_object_stay_the_orms() -> None:
    registry = inspection._registrars
    assert getattr(registry[type], "__module__", "") == "sqlalchemy.orm.util"
    assert getattr(registry[object], "__module__", "") == "sqlalchemy.orm.base"


def test_orm_classes_still_inspect_as_orm_classes() -> None:
    Base = orm.declarative_base()

    class OrmUser(Base):
        __tablename__ = "orm_user"
        id = Column(Integer, primary_key=True)

    class SkUser(sessionkit.declarative_base()):  # type: ignore[misc]
        __tablename__ = "sk_user"
        id = Column(Integer, primary_key=True)

    assert isinstance(sqlalchemy.inspect(OrmUser), orm.Mapper)
    assert isinstance(sqlalchemy.inspect(OrmUser()), orm.InstanceState)
    assert isinstance(sqlalchemy.inspect(SkUser()), InstanceInspection)


def test_unmapped_subclass_of_a_mapped_class_is_not_inspected() -> None:
    class Mapped_:
        pass

    sessionkit.map_imperatively(Mapped_, table("mapped_parent"))

    class Sub(Mapped_):
        pass

    assert isinstance(sqlalchemy.inspect(Mapped_()), InstanceInspection)
    assert sqlalchemy.inspect(Sub(), raiseerr=False) is None


def test_a_registration_is_made_once_and_kept() -> None:
    """Mapping runs the hook once; running it again, or mapping a class the application
    registered itself, changes nothing."""

    def app_registrar(obj: Any) -> str:
        return "the application's"

    class Own:
        pass

    class Plain:
        pass

    inspection._inspects(Own)(app_registrar)
    sessionkit.map_imperatively(Own, table("own_registration"))
    sessionkit.map_imperatively(Plain, table("plain_registration"))
    for hook in ON_MAPPED:
        hook(Plain)
        hook(Own)
    assert sqlalchemy.inspect(Own()) == "the application's"
    assert isinstance(sqlalchemy.inspect(Plain()), InstanceInspection)


def test_a_dropped_class_leaves_cores_registry() -> None:
    """The registry holds mapped classes weakly, so mapping classes on the fly leaks none."""

    def map_one() -> weakref.ref[type]:
        class Temporary:
            pass

        sessionkit.map_imperatively(Temporary, table("temporary"))
        assert Temporary in inspection._registrars
        return weakref.ref(Temporary)

    gc.collect()  # classes earlier tests dropped
    before = len(inspection._registrars)
    ref = map_one()
    gc.collect()
    assert ref() is None
    assert len(inspection._registrars) == before


ORDER_SCRIPT = """
import sys
{first}
{second}
from sqlalchemy import Column, Integer, inspect

class SkBase(sessionkit.DeclarativeBase):
    pass

class SkUser(SkBase):
    __tablename__ = "sk_user"
    id = Column(Integer, primary_key=True)

class OrmUser(orm.declarative_base()):
    __tablename__ = "orm_user"
    id = Column(Integer, primary_key=True)

assert type(inspect(SkUser())).__name__ == "InstanceInspection", inspect(SkUser())
assert inspect(SkUser) is SkUser.__sk_mapper__
assert isinstance(inspect(OrmUser), orm.Mapper)
assert isinstance(inspect(OrmUser()), orm.InstanceState)
print("ok")
"""


@pytest.mark.parametrize("orm_first", [True, False], ids=["orm-first", "orm-after"])
def test_import_order_does_not_matter(orm_first: bool) -> None:
    imports = [
        "import sessionkit\nassert 'sqlalchemy.orm' not in sys.modules",
        "import sqlalchemy.orm as orm",
    ]
    if orm_first:
        imports = ["import sqlalchemy.orm as orm", "import sessionkit"]
    script = ORDER_SCRIPT.format(first=imports[0], second=imports[1])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
