"""restore_data with an archive of the first table layout (before the models moved out of
the reviews app): data/layout1.tar.gz was written by that code from `build_world()`, and
data/layout1-rows.json holds every row of every table at that moment, by db_table, ordered
by pk (datetimes as Django's JSON encoder writes them, to the millisecond)."""

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.core.files.storage import default_storage
from django.core.management import CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from accounts.models import ApiToken
from agents.models import Agent, Interaction
from backup.legacy import LEGACY_LAYOUTS, manifest_upgrade
from backup.restore import backup_restore
from backup.tables import migration_state, tables
from core.models import AuditEvent, OutboxMessage
from retraining.models import ExportBatch, TrainingPair
from reviews.models import ReviewItem
from tests.backup.support import (
    User,
    members_of,
    nothing_restored,
    restore,
    snapshot,
    wipe,
    write_archive,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

DATA = Path(__file__).parent / "data"
LAYOUT1 = DATA / "layout1.tar.gz"
# Memberships travel by natural key: their own ids, and the ids of the groups and permissions
# (made by `migrate`) they point at, are each database's. So they are compared without their
# id, a group by name and a permission by app label, model and codename.
MEMBERSHIPS = {"auth_user_groups", "auth_user_user_permissions"}
# The source's ids (auth_group and auth_permission are not in the json), read off the
# archive: its groups in id order, and lee's one permission, of `reviews.agent` then.
# Restored, that permission is the one of `agents.agent`, where the content type moved.
SOURCE_GROUPS = {1: "reviewer", 2: "admin", 3: "ml", 4: "agent"}
SOURCE_PERMISSIONS = {32: ("agents", "agent", "view_agent")}
# Made by `migrate` in every database, so not in the json.
NOT_IN_JSON = {"auth_group", "auth_permission", "auth_group_permissions"}


@pytest.fixture
def layout1(media):
    """A freshly migrated, empty database and storage, and layout 1's rows as written."""
    wipe(media)
    return json.loads((DATA / "layout1-rows.json").read_text())


# Columns added after layout 1; a restore gives them their migration's default.
ADDED_LATER = {
    "reviews_apitoken": ["agent_slugs"],
    "reviews_interaction": ["redactions", "steps"],
    "retraining_trainingpair": ["scores", "steps"],
    "reviews_agent": ["redaction"],  # agents/0003: redaction policies
    "reviews_reviewitem": ["due_at", "sla_level", "sla_near_at"],
}
# Tables added after layout 4 (rubrics, the evals app), by label: no earlier layout's archive
# has them, they restore empty.
NEW_TABLES = {
    "reviews.rubric",
    "reviews.criterion",
    "reviews.score",
    "evals.comparison",
    "evals.comparisonvote",
    "evals.regressionrun",
    "evals.regressionanswer",
    # reviews/0010: review deadlines (issue 16), after rubrics.
    "reviews.deadline",
    "reviews.slabreach",
    "reviews.sladigest",
    # accounts/0003: single sign-on identities (issue 16).
    "accounts.identity",
    # agents/0003: the conversations' redaction placeholders (issue 16).
    "agents.redactedvalue",
}
NEW_MEMBERS = {f"data/{label}.jsonl" for label in NEW_TABLES}
SSO_TABLES = {"accounts.identity"}
DEADLINE_TABLES = {"reviews.deadline", "reviews.slabreach", "reviews.sladigest"}
REDACTION_TABLES = {"agents.redactedvalue"}


def test_every_earlier_layout_lacks_the_new_tables():
    assert {t.label for t in tables()} >= NEW_TABLES
    for layout in LEGACY_LAYOUTS.values():
        expected = (
            DEADLINE_TABLES | SSO_TABLES | REDACTION_TABLES
            if layout.name == "layout-5"
            else NEW_TABLES
        )
        assert layout.new_tables == expected, layout.name


def manifest_of(path: Path) -> dict:
    return json.loads(dict(members_of(path))["manifest.json"])


def rows_now(db_table: str, columns: list[str]) -> list[list]:
    """The table's rows as the json has them: `columns` in that order, by pk, encoded by
    Django's JSON encoder (the restore's own audit event left out)."""
    model = next(
        m for m in apps.get_models(include_auto_created=True) if m._meta.db_table == db_table
    )
    by_column = {f.column: f.attname for f in model._meta.concrete_fields}
    later = sorted(set(by_column) - set(columns))
    assert set(columns) <= set(by_column), f"{db_table}: the json has other columns"
    assert later == ADDED_LATER.get(db_table, []), f"{db_table}: columns added since layout 1"
    rows = model._base_manager.order_by(*[f.attname for f in model._meta.pk_fields])
    if model is AuditEvent:
        rows = rows.exclude(action="data.restored")
    values = rows.values_list(*[by_column[c] for c in columns])
    return json.loads(json.dumps([list(v) for v in values], cls=DjangoJSONEncoder))


def memberships(columns: list[str], rows: list[list], groups: dict, permissions: dict) -> list:
    """Membership rows without their id, groups and permissions by natural key, sorted."""
    named = [dict(zip(columns, row, strict=True)) for row in rows]
    for row in named:
        del row["id"]
        if "group_id" in row:
            row["group_id"] = groups[row["group_id"]]
        if "permission_id" in row:
            row["permission_id"] = permissions[row["permission_id"]]
    return sorted(named, key=lambda row: json.dumps(row, sort_keys=True))


def test_it_restores_every_row_of_a_layout1_archive(layout1):
    archived = {t.model._meta.db_table for t in tables() if t.label not in NEW_TABLES}
    assert set(layout1) == archived - NOT_IN_JSON  # the json covers every table it had

    restore(LAYOUT1)

    groups = dict(Group.objects.values_list("pk", "name"))
    permissions = {
        pk: (app, model, codename)
        for pk, app, model, codename in Permission.objects.values_list(
            "pk", "content_type__app_label", "content_type__model", "codename"
        )
    }
    now, then = {}, {}
    for db_table, written in layout1.items():
        columns, rows = written["columns"], rows_now(db_table, written["columns"])
        if db_table in MEMBERSHIPS:
            now[db_table] = memberships(columns, rows, groups, permissions)
            then[db_table] = memberships(
                columns, written["rows"], SOURCE_GROUPS, SOURCE_PERMISSIONS
            )
        else:
            now[db_table], then[db_table] = rows, written["rows"]
    assert now == then
    scopes = list(ApiToken.objects.values_list("agent_slugs", flat=True))
    assert scopes and scopes == [[]] * len(scopes)  # tokens from before scopes: every agent
    # Interactions and pairs from before tool steps have none.
    for model in (Interaction, TrainingPair):
        steps = list(model.objects.values_list("steps", flat=True))
        assert steps and steps == [[]] * len(steps)
    # Pairs from before rubrics have no scores; the tables added since are empty.
    scores = list(TrainingPair.objects.values_list("scores", flat=True))
    assert scores and scores == [{}] * len(scores)
    for table in tables():
        if table.label in NEW_TABLES:
            assert not table.model._base_manager.exists(), table.label


def test_it_restores_the_batch_files_of_a_layout1_archive_byte_for_byte(layout1, media):
    members = dict(members_of(LAYOUT1))
    listed = {
        m["name"].removeprefix("files/"): m["sha256"]
        for m in manifest_of(LAYOUT1)["members"]
        if m["kind"] == "file"
    }
    assert len(listed) == 6

    restore(LAYOUT1)

    stored = sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())
    assert stored == sorted(listed)
    for name, sha256 in listed.items():
        data = default_storage.open(name, "rb").read()
        assert data == members[f"files/{name}"]
        assert hashlib.sha256(data).hexdigest() == sha256
    for batch in ExportBatch.objects.exclude(file=""):
        assert hashlib.sha256(batch.file.read()).hexdigest() == batch.sha256


def test_it_gives_layout1_permissions_to_the_apps_their_models_moved_to(layout1):
    restore(LAYOUT1)

    lee = User.objects.get(username="lee")
    assert [(p.content_type.app_label, p.codename) for p in lee.user_permissions.all()] == [
        ("agents", "view_agent")
    ]
    assert (
        Group.objects.get(name="admin")
        .permissions.filter(content_type__app_label="agents", codename="change_agent")
        .exists()
    )
    assert not Permission.objects.filter(
        content_type__app_label="reviews", codename="view_agent"
    ).exists()


def test_it_renames_the_tasks_of_layout1_outbox_messages(layout1, tmp_path):
    message = {
        "id": 7,
        "task": "reviews.tasks.outbox_sweep",
        "args": [],
        "created_at": "2026-12-03T07:06:36.421569+00:00",
        "attempts": 2,
        "next_attempt_at": "2026-12-03T07:07:36.421569+00:00",
        "last_error": "broker down",
    }
    members = [
        (n, json.dumps(message).encode() + b"\n" if n == "data/reviews.outboxmessage.jsonl" else d)
        for n, d in members_of(LAYOUT1)
    ]
    write_archive(tmp_path / "outbox.tar.gz", members, checksums=True)

    restore(tmp_path / "outbox.tar.gz")

    restored = OutboxMessage.objects.get()
    assert (restored.pk, restored.task, restored.attempts) == (7, "core.tasks.outbox_sweep", 2)


def test_it_records_the_layout_of_a_layout1_restore_in_the_audit_log(layout1):
    restore(LAYOUT1)

    event = AuditEvent.objects.get(action="data.restored")
    assert event.after["layout"] == "layout-1"
    assert event.after["archive"] == LAYOUT1.name
    assert event.after["code_version"] == "coachdesk 0.1.0 (936af63aac67)"


def test_it_prints_todays_labels_in_the_summary_of_a_layout1_restore(layout1):
    output = restore(LAYOUT1)

    assert output.startswith(
        f"restored from {LAYOUT1}: 6 users, 2 agents, 13 interactions, 2 feedback events, "
        "12 review items, 14 reviews, 6 training pairs, 4 batches, 6 batch files"
    )


def test_it_maps_layout1_members_onto_todays_tables_in_their_order():
    renames = LEGACY_LAYOUTS["layout-1"].renames
    names = [n for n, _ in members_of(LAYOUT1) if n.startswith("data/")]

    assert [renames.get(n, n) for n in names] == [
        t.member for t in tables() if t.label not in NEW_TABLES
    ]


def test_it_maps_layout1_onto_this_databases_migration_state():
    mapped, layout = manifest_upgrade(manifest_of(LAYOUT1))

    assert layout is LEGACY_LAYOUTS["layout-1"]
    assert {app: m["applied"] for app, m in mapped["migrations"].items()} == migration_state(
        connection.alias
    ), (
        "a migration was added after the layout change: if it leaves archived rows as they "
        "are, add it to LEGACY_LAYOUTS['layout-1'].upgrade; else layout 1 archives must be "
        "restored with an earlier code version"
    )


def old_names_at(tmp_path: Path, migrations: dict) -> Path:
    """Layout 1's archive with its manifest's migration state replaced."""
    members = members_of(LAYOUT1)
    manifest = json.loads(members[0][1]) | {"migrations": migrations}
    path = tmp_path / "odd.tar.gz"
    write_archive(path, [("manifest.json", json.dumps(manifest).encode()), *members[1:]])
    return path


def test_it_refuses_old_names_at_another_migration_state(layout1, tmp_path, media):
    migrations = manifest_of(LAYOUT1)["migrations"]
    migrations["reviews"]["applied"].remove("0005_outbox_and_auto_assign")
    migrations["reviews"]["latest"] = "0004_ingest_and_browse_indexes"

    with pytest.raises(
        CommandError, match="migration state differs for core: the archive is at None"
    ):
        restore(old_names_at(tmp_path, migrations))

    assert nothing_restored(media)


def test_it_refuses_old_names_at_todays_migration_state(layout1, tmp_path, media):
    migrations = {
        app: {"latest": applied[-1], "applied": applied}
        for app, applied in migration_state(connection.alias).items()
    }

    with pytest.raises(CommandError, match=r"unknown: data/reviews\.reviewerprofile\.jsonl"):
        restore(old_names_at(tmp_path, migrations))

    assert nothing_restored(media)


def test_it_names_the_layout_when_a_mapped_archive_is_not_at_this_databases_state(
    layout1, media, monkeypatch
):
    # As if core/0002 had come after the layout change: the mapping stops at core/0001.
    layout = LEGACY_LAYOUTS["layout-1"]
    upgrade = {**layout.upgrade, "core": ("0001_initial",)}
    monkeypatch.setitem(LEGACY_LAYOUTS, "layout-1", dataclasses.replace(layout, upgrade=upgrade))

    with pytest.raises(
        CommandError,
        match=r"differs for core: the archive is at 0001_initial \(mapped from layout-1\), "
        "this database at 0002_outbox_task_names",
    ):
        restore(LAYOUT1)

    assert nothing_restored(media)


# --- layouts 2 to 4: rewritten from a fresh archive ----------------------------------------------

# The columns tool steps added, by member, and the migrations that added them.
STEPS_MEMBERS = ("data/agents.interaction.jsonl", "data/retraining.trainingpair.jsonl")
STEPS_MIGRATIONS = {"agents": "0002_interaction_steps", "retraining": "0004_trainingpair_steps"}
# The indexes of issue 18 (no column changed), added after tool steps.
INDEX_MIGRATIONS = {"reviews": ("0007_console_sort_indexes", "0008_claim_plan_indexes")}
# Rubrics (new tables, the pairs' `scores`) and the evals app (new tables), added after the
# indexes.
RUBRIC_MIGRATIONS = {
    "reviews": "0009_rubrics",
    # 0006: the comparisons dataset of export batches (no column of archived rows changed).
    "retraining": ("0005_trainingpair_scores", "0006_comparisons_dataset"),
    "evals": "0001_initial",
}
SCORES_MEMBERS = ("data/retraining.trainingpair.jsonl",)
# Review deadlines (new tables, the items' three SLA columns), added after rubrics: every
# earlier layout lacks them.
DEADLINE_MIGRATIONS = {"reviews": "0010_deadlines_sla"}
DEADLINE_COLUMNS = {"data/reviews.reviewitem.jsonl": ["due_at", "sla_level", "sla_near_at"]}
# Single sign-on identities (a new table), added after rubrics: every earlier layout lacks it.
SSO_MIGRATIONS = {"accounts": "0003_sso_identity"}
# Personal data redaction (the agents' policy, the interactions' counts, a new table), added
# after rubrics: every earlier layout lacks them.
REDACTION_MIGRATIONS = {"agents": "0003_redaction"}
REDACTION_COLUMNS = {
    "data/agents.agent.jsonl": ["redaction"],
    "data/agents.interaction.jsonl": ["redactions"],
}


def without_migrations(manifest: dict, migrations: dict) -> None:
    """Takes `migrations` out of the manifest's state; an app left with none was not in the
    state the older code wrote at all (evals)."""
    for app, names in migrations.items():
        state = manifest["migrations"][app]
        for name in [names] if isinstance(names, str) else names:
            state["applied"].remove(name)
        if not state["applied"]:
            del manifest["migrations"][app]
            continue
        state["latest"] = state["applied"][-1]


def as_written_before(path: Path, out: Path, *, migrations: list[dict], columns: dict) -> Path:
    """The archive at `path` as an older code version wrote it: its migration state without
    `migrations`, without the members (and counts) of the tables added after layout 4, and
    without `columns` (member → the column keys, declared last) in the manifest and rows.
    Every earlier layout predates the review deadlines and SSO identities: those are always
    taken out."""
    migrations = [DEADLINE_MIGRATIONS, SSO_MIGRATIONS, REDACTION_MIGRATIONS, *migrations]
    columns = {**columns, **DEADLINE_COLUMNS}
    # Declared last of all: taken after the member's other later columns.
    columns = {
        m: [*columns.get(m, []), *REDACTION_COLUMNS.get(m, [])]
        for m in {*columns, *REDACTION_COLUMNS}
    }
    members = members_of(path)
    manifest = json.loads(members[0][1])
    for names in migrations:
        without_migrations(manifest, names)
    manifest["counts"] = {k: n for k, n in manifest["counts"].items() if k not in NEW_TABLES}
    manifest["members"] = [m for m in manifest["members"] if m["name"] not in NEW_MEMBERS]
    for member in manifest["members"]:
        if member["name"] in columns:
            dropped = columns[member["name"]]
            assert member["fields"][-len(dropped) :] == dropped
            member["fields"] = member["fields"][: -len(dropped)]
    rewritten = []
    for name, data in members[1:]:
        if name in NEW_MEMBERS:
            continue
        if name in columns:
            rows = [json.loads(line) for line in data.splitlines()]
            data = b"".join(
                json.dumps({k: v for k, v in row.items() if k not in columns[name]}).encode()
                + b"\n"
                for row in rows
            )
        rewritten.append((name, data))
    members = [("manifest.json", json.dumps(manifest).encode()), *rewritten]
    write_archive(out, members, checksums=True)
    return out


def before_rubrics(path: Path, out: Path) -> Path:
    """Layout 4: as the code before rubrics and the evals app wrote it."""
    return as_written_before(
        path,
        out,
        migrations=[RUBRIC_MIGRATIONS],
        columns=dict.fromkeys(SCORES_MEMBERS, ["scores"]),
    )


def before_indexes(path: Path, out: Path) -> Path:
    """Layout 3: as the code before issue 18's indexes wrote it (the same rows as layout 4's,
    a migration state without the indexes)."""
    return as_written_before(
        path,
        out,
        migrations=[RUBRIC_MIGRATIONS, INDEX_MIGRATIONS],
        columns=dict.fromkeys(SCORES_MEMBERS, ["scores"]),
    )


def before_steps(path: Path, out: Path) -> Path:
    """Layout 2: as the code before tool steps wrote it: its interactions and pairs without
    the `steps` column either."""
    return as_written_before(
        path,
        out,
        migrations=[RUBRIC_MIGRATIONS, INDEX_MIGRATIONS, STEPS_MIGRATIONS],
        columns={
            "data/agents.interaction.jsonl": ["steps"],
            "data/retraining.trainingpair.jsonl": ["steps", "scores"],
        },
    )


def as_restored_from_before_rubrics(before: dict) -> dict:
    """A snapshot of the world as an archive from before rubrics restores it: the pairs
    without scores, no rubric, criterion, score nor evals row."""
    label = TrainingPair._meta.label
    assert any(row["fields"]["scores"] for row in before[label])
    for row in before[label]:
        row["fields"]["scores"] = {}
    for row in before[ReviewItem._meta.label]:  # reviews/0010: no deadline, none escalated
        row["fields"].update(due_at=None, sla_near_at=None, sla_level=0)
    for model, column in ((Agent, "redaction"), (Interaction, "redactions")):  # agents/0003
        assert any(row["fields"][column] for row in before[model._meta.label]), column
        for row in before[model._meta.label]:
            row["fields"][column] = {}
    for table in tables():
        if table.label in NEW_TABLES:
            assert before[table.model._meta.label], f"the world has no {table.label}"
            before[table.model._meta.label] = []
    return before


def restored_snapshot(saved, media) -> dict:
    """The snapshot of the saved world once restored; the database and storage wiped again."""
    restore(saved.path)
    before = snapshot()
    wipe(media)
    return before


# --- layout 2: after the reorganisation, before tool steps -----------------------------------


def test_it_restores_an_archive_from_before_tool_steps_with_none(saved, tmp_path, media):
    before = as_restored_from_before_rubrics(restored_snapshot(saved, media))

    restore(before_steps(saved.path, tmp_path / "layout2.tar.gz"))

    for model in (Interaction, TrainingPair):
        label = model._meta.label
        assert any(row["fields"]["steps"] for row in before[label])
        for row in before[label]:
            row["fields"]["steps"] = []
    assert snapshot() == before
    assert AuditEvent.objects.get(action="data.restored").after["layout"] == "layout-2"


def test_it_maps_layout2_onto_this_databases_migration_state(saved, tmp_path):
    mapped, layout = manifest_upgrade(
        manifest_of(before_steps(saved.path, tmp_path / "layout2.tar.gz"))
    )

    assert layout is LEGACY_LAYOUTS["layout-2"]
    assert {app: m["applied"] for app, m in mapped["migrations"].items()} == migration_state(
        connection.alias
    ), (
        "a migration was added after tool steps: if it leaves archived rows as they are, add "
        "it to the `upgrade` of LEGACY_LAYOUTS (layouts 1 and 2); else say in `added` what "
        "older rows get"
    )


# --- layout 3: after tool steps, before the indexes of issue 18 --------------------------------


def test_it_restores_an_archive_from_before_the_claim_indexes_as_it_was(saved, tmp_path, media):
    before = as_restored_from_before_rubrics(restored_snapshot(saved, media))

    restore(before_indexes(saved.path, tmp_path / "layout3.tar.gz"))

    assert snapshot() == before
    assert AuditEvent.objects.get(action="data.restored").after["layout"] == "layout-3"


# --- layout 4: after the indexes, before rubrics and the evals app --------------------------


def test_it_restores_an_archive_from_before_rubrics_with_no_scores(saved, tmp_path, media):
    before = as_restored_from_before_rubrics(restored_snapshot(saved, media))
    layout4 = before_rubrics(saved.path, tmp_path / "layout4.tar.gz")
    assert not NEW_MEMBERS & {name for name, _ in members_of(layout4)}

    result = backup_restore(archive=layout4)

    assert snapshot() == before
    assert list(TrainingPair.objects.values_list("scores", flat=True)) == [{}] * len(
        before[TrainingPair._meta.label]
    )
    assert AuditEvent.objects.get(action="data.restored").after["layout"] == "layout-4"
    # Every table counted, the ones the archive lacks with 0 rows.
    assert set(result.counts) == {t.label for t in tables()}
    assert {label: result.counts[label] for label in NEW_TABLES} == dict.fromkeys(NEW_TABLES, 0)
    assert result.counts["retraining.trainingpair"] == len(before[TrainingPair._meta.label])


def test_it_maps_layout4_onto_this_databases_migration_state(saved, tmp_path):
    manifest = manifest_of(before_rubrics(saved.path, tmp_path / "layout4.tar.gz"))
    assert "evals" not in manifest["migrations"]  # the code before the evals app

    mapped, layout = manifest_upgrade(manifest)

    assert layout is LEGACY_LAYOUTS["layout-4"]
    assert {app: m["applied"] for app, m in mapped["migrations"].items()} == migration_state(
        connection.alias
    ), (
        "a migration was added after rubrics: if it leaves archived rows as they are, add it "
        "to the `upgrade` of every layout in LEGACY_LAYOUTS (its new tables to `new_tables`, "
        "its new columns' defaults to `added`)"
    )
    assert {label: mapped["counts"][label] for label in NEW_TABLES} == dict.fromkeys(NEW_TABLES, 0)
    fields = next(m["fields"] for m in mapped["members"] if m["name"] in SCORES_MEMBERS)
    assert fields[-2:] == ["steps", "scores"]


def test_it_refuses_a_layout4_archive_that_holds_a_new_table(saved, tmp_path, media):
    layout4 = before_rubrics(saved.path, tmp_path / "layout4.tar.gz")
    members = members_of(layout4)
    manifest = json.loads(members[0][1])
    rubrics = next(m for m in manifest_of(saved.path)["members"] if m["name"] in NEW_MEMBERS)
    manifest["members"].append(rubrics)
    rubric_data = dict(members_of(saved.path))[rubrics["name"]]
    write_archive(
        tmp_path / "odd.tar.gz",
        [
            ("manifest.json", json.dumps(manifest).encode()),
            *members[1:],
            (rubrics["name"], rubric_data),
        ],
    )

    with pytest.raises(CommandError, match=rf"unknown: {rubrics['name']}"):
        restore(tmp_path / "odd.tar.gz")

    assert nothing_restored(media)


def test_it_refuses_an_archive_of_todays_state_without_a_new_table(saved, tmp_path, media):
    members = [(n, d) for n, d in members_of(saved.path) if n != "data/evals.comparison.jsonl"]
    manifest = json.loads(members[0][1])
    manifest["members"] = [
        m for m in manifest["members"] if m["name"] != "data/evals.comparison.jsonl"
    ]
    write_archive(
        tmp_path / "short.tar.gz", [("manifest.json", json.dumps(manifest).encode()), *members[1:]]
    )

    with pytest.raises(CommandError, match=r"missing: data/evals\.comparison\.jsonl"):
        restore(tmp_path / "short.tar.gz")

    assert nothing_restored(media)
