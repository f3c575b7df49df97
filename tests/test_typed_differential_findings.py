"""What the differential state machine (test_differential.py) found while it ran with its
typed ``Child``, each reduced to one scenario on typed models and compared with the ORM.

The finding is not about typed declarations: the same steps fail on Column models (and on
the machine of the last commit, before ``Child`` was typed). It is kept as a strict xfail
until sessionkit is fixed; the machine meets it only on some random runs.
"""

from __future__ import annotations

import pytest
from models import item_model
from reference import ORM, ORM_TYPED, SK, SK_TYPED, Api, Obs, compare
from sqlalchemy import Engine

from support import by_label


def delete_inside_a_rolled_back_savepoint(api: Api, engine: Engine, obs: Obs) -> None:
    """Machine steps: begin_nested(); add(Item k1); get_child(1) (autoflush: INSERT);
    delete(Item); savepoint rollback(); commit()."""
    Base, Item = item_model(api)
    Base.metadata.create_all(engine)
    obs.rec.clear()
    session = api.Session(engine)
    savepoint = session.begin_nested()
    item = Item(id="k1", name="x")
    session.add(item)
    session.flush()
    session.delete(item)
    savepoint.rollback()
    obs.sql("ROLLBACK TO SAVEPOINT")
    obs.append(("after the savepoint", api.state(item), item in session, api.visible(item)))
    session.commit()
    obs.sql("commit")
    obs.append(("after commit", api.state(item), item in session, api.visible(item)))
    session.close()


@pytest.mark.parametrize("apis", [(SK_TYPED, ORM_TYPED), (SK, ORM)], ids=["typed", "Column"])
@pytest.mark.xfail(
    strict=True,
    reason=(
        "ORM: the object whose INSERT the savepoint rolled back is transient and keeps "
        "{'id': 'k1', 'name': 'x'} through the following commit(); sessionkit's commit() "
        "empties its __dict__ (the unflushed delete() mark survives the savepoint rollback "
        "and commit expires the object), against rollback-5 and savepoint-2"
    ),
)
def test_commit_keeps_the_values_of_an_insert_a_savepoint_rolled_back(
    sp_engine: Engine, sp_ref_engine: Engine, apis: tuple[Api, Api]
) -> None:
    """docs/behaviour.md: rollback-5 (a rolled-back INSERT leaves a transient object with
    its values, also when it was deleted and a SAVEPOINT was open), savepoint-2."""
    facts = by_label(compare(delete_inside_a_rolled_back_savepoint, sp_engine, sp_ref_engine, apis))
    assert facts["after commit"][1:] == ("transient", False, {"id": "k1", "name": "x"})
