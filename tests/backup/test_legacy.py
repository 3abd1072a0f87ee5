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
from agents.models import Interaction
from backup.legacy import LEGACY_LAYOUTS, manifest_upgrade
from backup.tables import migration_state, tables
from core.models import AuditEvent, OutboxMessage
from retraining.models import ExportBatch, TrainingPair
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
    "reviews_interaction": ["steps"],
    "retraining_trainingpair": ["steps"],
}


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
    archived = {t.model._meta.db_table for t in tables()}
    assert set(layout1) == archived - NOT_IN_JSON  # the json covers every table

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

    assert [renames.get(n, n) for n in names] == [t.member for t in tables()]


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


# --- layout 2: after the reorganisation, before tool steps -----------------------------------

# The columns tool steps added, by member, and the migrations that added them.
STEPS_MEMBERS = ("data/agents.interaction.jsonl", "data/retraining.trainingpair.jsonl")
STEPS_MIGRATIONS = {"agents": "0002_interaction_steps", "retraining": "0004_trainingpair_steps"}


# The indexes of issue 18 (no column changed), added after tool steps.
INDEX_MIGRATIONS = {"reviews": ("0007_console_sort_indexes", "0008_claim_plan_indexes")}


def without_migrations(manifest: dict, migrations: dict) -> None:
    for app, names in migrations.items():
        state = manifest["migrations"][app]
        for name in [names] if isinstance(names, str) else names:
            state["applied"].remove(name)
        state["latest"] = state["applied"][-1]


def before_indexes(path: Path, out: Path) -> Path:
    """The archive at `path` as the code before issue 18's indexes wrote it: the same rows,
    a migration state without them."""
    members = members_of(path)
    manifest = json.loads(members[0][1])
    without_migrations(manifest, INDEX_MIGRATIONS)
    write_archive(out, [("manifest.json", json.dumps(manifest).encode()), *members[1:]])
    return out


def before_steps(path: Path, out: Path) -> Path:
    """The archive at `path` as the code before tool steps wrote it: its migration state
    without the two migrations (nor the later ones), its interactions and pairs without the
    `steps` column."""
    members = members_of(path)
    manifest = json.loads(members[0][1])
    without_migrations(manifest, {**STEPS_MIGRATIONS})
    without_migrations(manifest, INDEX_MIGRATIONS)
    for member in manifest["members"]:
        if member["name"] in STEPS_MEMBERS:
            assert member["fields"][-1] == "steps"
            member["fields"] = member["fields"][:-1]
    rewritten = []
    for name, data in members[1:]:
        if name in STEPS_MEMBERS:
            rows = [json.loads(line) for line in data.splitlines()]
            data = b"".join(
                json.dumps({k: v for k, v in row.items() if k != "steps"}).encode() + b"\n"
                for row in rows
            )
        rewritten.append((name, data))
    members = [("manifest.json", json.dumps(manifest).encode()), *rewritten]
    write_archive(out, members, checksums=True)
    return out


def test_it_restores_an_archive_from_before_tool_steps_with_none(saved, tmp_path, media):
    restore(saved.path)
    before = snapshot()
    wipe(media)

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
    restore(saved.path)
    before = snapshot()
    wipe(media)

    restore(before_indexes(saved.path, tmp_path / "layout3.tar.gz"))

    assert snapshot() == before
    assert AuditEvent.objects.get(action="data.restored").after["layout"] == "layout-3"
