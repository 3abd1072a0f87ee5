"""core.transitions: the one writer of every status, and the rule that nothing else writes one."""

import ast
from pathlib import Path

import pytest
from django.utils import timezone

from core.models import AuditEvent
from core.transitions import StateMachine, transition
from reviews.models import ReviewItem
from reviews.services import ITEM_STATES, Conflict
from tests.factories import ReviewItemFactory, UserFactory

Status = ReviewItem.Status
ROOT = Path(__file__).resolve().parents[2]
APPS = ("config", "core", "accounts", "agents", "reviews", "retraining", "kpis", "ingest")
APPS += ("console", "demo", "backup", "evals")
STATE_FIELDS = {"status", "state"}


@pytest.mark.django_db
def test_it_moves_the_row_and_records_the_move_in_one_go():
    rita = UserFactory(username="rita")
    item = ReviewItemFactory()
    lease = timezone.now()

    action = transition(
        ITEM_STATES,
        item,
        Status.CLAIMED,
        actor=rita,
        changes={"claimed_by": rita, "lease_expires_at": lease},
    )

    stored = ReviewItem.objects.get(pk=item.pk)
    assert (action, stored.status, stored.claimed_by_id, stored.version) == (
        "item.claimed",
        "claimed",
        rita.pk,
        1,
    )
    assert (item.status, item.version, item.claimed_by_id) == ("claimed", 1, rita.pk)
    event = AuditEvent.objects.get(target_type="review_item", target_id=item.pk)
    assert (event.actor_id, event.action) == (rita.pk, "item.claimed")
    assert event.before == {"status": "pending", "claimed_by": None, "version": 0}
    assert event.after == {
        "status": "claimed",
        "claimed_by": rita.pk,
        "lease_expires_at": lease.isoformat(),
    }


@pytest.mark.django_db
def test_it_raises_the_machines_conflict_and_writes_nothing_when_the_row_moved_first():
    item = ReviewItemFactory()
    ReviewItem.objects.filter(pk=item.pk).update(status=Status.DONE)

    with pytest.raises(Conflict, match="changed in the meantime"):
        transition(ITEM_STATES, item, Status.CLAIMED)

    assert ReviewItem.objects.get(pk=item.pk).status == "done"
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_it_refuses_a_move_the_machine_does_not_list():
    item = ReviewItemFactory()

    with pytest.raises(ValueError, match="not allowed"):
        transition(ITEM_STATES, item, Status.DONE)

    assert ReviewItem.objects.get(pk=item.pk).status == "pending"
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_it_adds_the_guard_to_the_compare_and_swap():
    item = ReviewItemFactory(priority=3)

    with pytest.raises(Conflict):
        transition(ITEM_STATES, item, Status.CLAIMED, guard={"priority": 4})

    assert ReviewItem.objects.get(pk=item.pk).status == "pending"


def test_it_refuses_moves_that_would_be_recorded_under_two_names():
    machine = StateMachine(
        model=ReviewItem,
        target_type="x",
        moves={("a", "c"): "one", ("b", "c"): "two"},
        conflict=Conflict,
        conflict_message="",
    )
    assert machine.action(("a",), "c") == "one"
    with pytest.raises(ValueError):
        machine.action(("a", "b"), "c")


def _writes_state(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(
            isinstance(t, ast.Attribute)
            and t.attr in STATE_FIELDS
            and not (isinstance(t.value, ast.Name) and t.value.id == "outcome")
            for t in targets
        )
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr not in ("update", "update_or_create", "bulk_update"):
            return False
        named = {k.arg for k in node.keywords}
        named |= {c.value for a in node.args for c in ast.walk(a) if isinstance(c, ast.Constant)}
        return bool(named & STATE_FIELDS)
    return False


def _state_writes(path: Path) -> list[str]:
    """Places in one module that write a status / state field other than through
    core.transitions: `x.status = …` (but `outcome.status`, a result object), `.update(
    status=…)` / `bulk_update(…, ["status"])` / `update_or_create(status=…)`, and SQL
    `SET status`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if _writes_state(node):
            found.append(where)
        elif isinstance(node, ast.Constant) and any(
            f"SET {name}" in str(node.value) for name in STATE_FIELDS
        ):
            found.append(f"{where} (SQL)")
    return found


def test_it_is_the_only_writer_of_a_status():
    """One place applies state changes. The single exception is the PostgreSQL claim, one
    SQL statement (compare-and-swap and audit row included) in reviews/services.py."""
    offenders = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts or path == ROOT / "core" / "transitions.py":
                continue
            offenders += _state_writes(path)
    assert [o for o in offenders if not o.startswith("reviews/services.py")] == []
    assert [o for o in offenders if o.startswith("reviews/services.py")] == [
        o for o in offenders if o.startswith("reviews/services.py") and o.endswith("(SQL)")
    ]
    assert len(offenders) == 1  # the claim statement


def test_the_rule_catches_a_status_written_by_hand(tmp_path, monkeypatch):
    """The check above can fail: the three shapes of a hand-written status change."""
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    module = tmp_path / "bad.py"
    module.write_text(
        "item.status = 'done'\n"
        "ReviewItem.objects.filter(pk=1).update(status='done')\n"
        "SQL = 'UPDATE reviews_reviewitem SET status = 1'\n"
        "outcome.status = item.status\n"
    )
    assert _state_writes(module) == ["bad.py:1", "bad.py:2", "bad.py:3 (SQL)"]
