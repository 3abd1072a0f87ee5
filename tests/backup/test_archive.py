"""backup_data / restore_data (reviews/backup.py): a real round trip on PostgreSQL, and the
archives a restore must refuse without writing anything.

Each test builds the same small world the real way (factories for users, agents and items;
the review services for claims and decisions; the retraining services for batches; the KPI
recompute), backs it up, wipes the database with `flush` (which also resets every id
sequence and lets `migrate`'s post-migrate hooks recreate groups, permissions and the
default taxonomy, as in a freshly migrated database) and the storage files, and restores.
"""

import hashlib
import io
import json
import shutil
import tarfile
from io import StringIO
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core import serializers
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db.models import Q
from django.test import override_settings

from accounts import services as account_services
from agents.models import Agent, Interaction
from core.models import AuditEvent
from ingest.services import feedback_ingest
from kpis import services as kpi_services
from kpis.models import Alert, AlertDelivery
from retraining import services as batch_services
from retraining.models import BatchPair, ExportBatch, TrainingPair
from reviews import services
from reviews.models import Review, ReviewItem
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

User = get_user_model()
# Every model whose rows the archive must bring back, ids included: the users and every
# model of the project's apps (groups and permissions are compared by name: their ids
# belong to each database).
MODELS = [
    User,
    *[
        m
        for app in ("core", "accounts", "agents", "reviews", "retraining", "kpis")
        for m in apps.get_app_config(app).get_models()
    ],
]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    settings.EXPORT_TMP_DIR = root / ".export-tmp"
    return root


@pytest.fixture
def world():
    return build_world()


def build_world() -> dict:
    """Users with roles, two agents (one four-eyes), items in every state, reviews with
    corrections and an adjudication, pairs, three ready batches and a queued one, feedback,
    an API token, KPI snapshots, an alert with its webhook delivery. Returns the pipeline's
    token secret and the ML engineer."""
    rita = UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    oscar = UserFactory(username="oscar", roles=["reviewer", "ml"], domains=["support", "legal"])
    lena = UserFactory(username="lena", roles=["reviewer"], domains=["legal"])
    lee = UserFactory(username="lee", roles=["admin", "reviewer"], is_staff=True)
    mo = UserFactory(username="mo", roles=["ml"])
    pipeline = UserFactory(username="pipeline", roles=["agent"])
    lee.user_permissions.add(Permission.objects.get(codename="view_agent"))
    Group.objects.get(name="admin").permissions.add(Permission.objects.get(codename="change_agent"))
    _, secret = account_services.token_create(user=pipeline, name="pipeline")

    support = AgentFactory(slug="support-bot", domain="support", guidelines="Be *kind*. ✅")
    legal = AgentFactory(slug="legal-bot", domain="legal", required_reviews=2)
    for n in range(8):
        ReviewItemFactory(
            interaction__agent=support,
            interaction__input=f"Question {n}: où est ma commande ? 日本語",
            interaction__output=f"Answer {n}",
            interaction__confidence=0.1 + n / 100,
            interaction__context=[{"role": "user", "content": "Hi"}],
            interaction__metadata={"channel": "web", "n": n},
            interaction__agent_version="v2" if n % 2 else "v1",
        )
    for n in range(4):
        ReviewItemFactory(
            interaction__agent=legal,
            interaction__domain="legal",
            interaction__input=f"Legal question {n}",
            interaction__output=f"Legal answer {n}",
            interaction__confidence=0.1 * (n + 1),  # claimed in this order
            required_reviews=2,
        )
    InteractionFactory(agent=support, external_id="confident", confidence=0.95)

    def decide(person, agent, verdict, corrected="", category=None):
        item = services.item_claim(reviewer=person, agent_id=agent.pk)
        decision = services.decision_validate(
            item=item,
            verdict=verdict,
            corrected_output=corrected,
            error_category=category,
            notes=f"{verdict} by {person.username}",
            seconds_spent=42,
        )
        return services.review_submit(item=item, reviewer=person, decision=decision)

    decide(rita, support, "approve")
    decide(rita, support, "correct", "Refunds take 5 days.", "factual-error")
    decide(rita, support, "reject", category="tone")
    decide(rita, support, "skip")
    escalated = decide(rita, support, "escalate").item
    services.item_adjudicate(
        item=escalated,
        admin=lee,
        decision=services.decision_validate(
            item=escalated, verdict="correct", corrected_output="Fixed."
        ),
    )
    decide(oscar, support, "approve")
    services.item_claim(reviewer=oscar, agent_id=support.pk)  # left claimed

    decide(lena, legal, "approve")  # four-eyes, agreeing: done, one pair with two reviews
    decide(oscar, legal, "approve")
    decide(lena, legal, "correct", "Consult a lawyer.", "policy-legal-risk")
    decide(oscar, legal, "correct", "Consult a lawyer.", "policy-legal-risk")
    decide(lena, legal, "approve")  # disagreeing: disputed
    decide(oscar, legal, "reject", category="policy-legal-risk")
    decide(lena, legal, "approve")  # needs a second review

    feedback_ingest(
        records=list(
            enumerate(
                [
                    {"agent": "support-bot", "external_id": "confident", "kind": "thumbs_up"},
                    {
                        "agent": "support-bot",
                        "external_id": "confident",
                        "kind": "clicked",
                        "item_ref": "sku-9",
                        "value": 1.5,
                    },
                ]
            )
        )
    )
    for agent, fmt in [(support, "jsonl"), (support, "preference"), (legal, "parquet")]:
        batch = batch_services.batch_request(agent=agent, format=fmt, actor=mo, enqueue=False)
        assert batch_services.batch_build(batch_id=batch.pk) == ExportBatch.Status.READY
    batch_services.batch_request(agent=legal, format="csv", actor=mo, enqueue=False)

    kpi_services.kpis_recompute(full=True)
    alert = Alert.objects.create(
        agent=support, kpi="resolution_rate", threshold={"below": 0.7}, value=0.5, n=60
    )
    AlertDelivery.objects.create(
        alert=alert, event="raised", url="https://hooks.example.com/a", payload={"v": 0.5}
    )
    # The world is what the docstring says it is.
    assert set(ReviewItem.objects.values_list("status", flat=True)) == set(ReviewItem.Status)
    assert {p.reviews.count() for p in TrainingPair.objects.filter(agent=legal)} == {2}
    assert set(TrainingPair.objects.values_list("source", flat=True)) == {"approve", "correct"}
    return {"secret": secret, "ml": mo}


def snapshot() -> dict:
    """Every row of every model, serialized by Django (pks and foreign key ids as stored),
    groups and permissions by name, many-to-many lists sorted."""
    dump = {}
    for model in MODELS:
        rows = model._base_manager.order_by(*[f.attname for f in model._meta.pk_fields])
        if model is AuditEvent:
            rows = rows.filter(~Q(action="data.restored"))
        objects = serializers.serialize("python", rows, use_natural_foreign_keys=model is User)
        for obj in objects:
            for name, value in obj["fields"].items():
                if isinstance(value, list) and model._meta.get_field(name).many_to_many:
                    obj["fields"][name] = sorted(value)
        dump[model._meta.label] = objects
    dump["groups"] = {
        g.name: sorted(g.permissions.values_list("codename", flat=True))
        for g in Group.objects.all()
    }
    return dump


def stored_files() -> dict[str, str]:
    names = set()
    for batch in ExportBatch.objects.exclude(file=""):
        names.update([batch.file.name, batch.manifest_file.name])
    return {n: hashlib.sha256(default_storage.open(n, "rb").read()).hexdigest() for n in names}


def backup(path: Path) -> str:
    out = StringIO()
    call_command("backup_data", "--output", str(path), stdout=out)
    return out.getvalue()


def restore(path: Path) -> str:
    out = StringIO()
    call_command("restore_data", "--input", str(path), stdout=out)
    return out.getvalue()


def wipe(media: Path) -> None:
    """A freshly migrated database (see the module docstring) and empty storage."""
    call_command("flush", interactive=False, verbosity=0)
    shutil.rmtree(media, ignore_errors=True)


def nothing_restored(media: Path) -> bool:
    return (
        not User.objects.exists()
        and not Interaction.objects.exists()
        and not AuditEvent.objects.exists()
        and not any(p.is_file() for p in media.rglob("*"))
    )


@pytest.fixture
def archive(world, tmp_path, media):
    path = tmp_path / "backup.tar.gz"
    backup(path)
    return path


@pytest.fixture(scope="module")
def saved(django_db_setup, django_db_blocker, tmp_path_factory):
    """One archive of the world, made once for the tests that only read it; the database
    and storage are wiped afterwards, as a fresh target."""
    folder = tmp_path_factory.mktemp("saved")
    media = folder / "media"
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=media, EXPORT_TMP_DIR=media / ".export-tmp"),
    ):
        made = build_world()
        backup(folder / "backup.tar.gz")
        batches = {b.format: b for b in ExportBatch.objects.exclude(file="")}
        wipe(media)
    return SimpleNamespace(path=folder / "backup.tar.gz", secret=made["secret"], batches=batches)


# --- the round trip ----------------------------------------------------------------------------


def test_it_restores_every_row_with_its_id(world, tmp_path, media):
    before = snapshot()
    backup(tmp_path / "b.tar.gz")
    wipe(media)
    assert snapshot() != before

    restore(tmp_path / "b.tar.gz")

    assert snapshot() == before


def test_it_restores_every_batch_file_byte_for_byte(world, tmp_path, media):
    before = stored_files()
    assert len(before) == 6
    backup(tmp_path / "b.tar.gz")
    wipe(media)

    restore(tmp_path / "b.tar.gz")

    assert stored_files() == before


def test_it_restores_group_memberships_by_name_when_group_ids_differ(world, tmp_path, media):
    roles = {
        u.username: sorted(u.groups.values_list("name", flat=True)) for u in User.objects.all()
    }
    backup(tmp_path / "b.tar.gz")
    wipe(media)
    Group.objects.all().delete()
    for name in ["zz-extra", "agent", "ml", "admin", "reviewer"]:
        Group.objects.create(name=name)  # other ids than the source's

    restore(tmp_path / "b.tar.gz")

    assert {
        u.username: sorted(u.groups.values_list("name", flat=True)) for u in User.objects.all()
    } == roles
    assert list(User.objects.get(username="lee").user_permissions.values_list("codename")) == [
        ("view_agent",)
    ]


def test_it_resets_the_sequences_so_new_rows_get_new_ids(world, tmp_path, media):
    highest = {m: m.objects.order_by("-pk").first().pk for m in (User, Interaction, ReviewItem)}
    backup(tmp_path / "b.tar.gz")
    wipe(media)
    restore(tmp_path / "b.tar.gz")

    item = ReviewItemFactory(interaction__agent=Agent.objects.get(slug="support-bot"))
    user = UserFactory(username="newcomer", roles=["reviewer"], domains=["support"])

    assert user.pk > highest[User]
    assert item.interaction.pk > highest[Interaction]
    assert item.pk > highest[ReviewItem]


def test_it_serves_a_restored_batch_through_the_download_api(saved, media, api_client):
    batch = saved.batches["parquet"]
    restore(saved.path)

    response = api_client(User.objects.get(username="mo")).get(
        f"/api/v1/exports/{batch.pk}/download"
    )

    body = b"".join(response.streaming_content)
    assert response.status_code == 200
    assert hashlib.sha256(body).hexdigest() == batch.sha256 == response["X-Content-SHA256"]


def test_it_serves_a_restored_batch_through_the_download_page(saved, media, client):
    batch = saved.batches["jsonl"]
    restore(saved.path)
    client.force_login(User.objects.get(username="mo"))

    response = client.get(f"/exports/{batch.pk}/download/")

    assert response.status_code == 200
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == batch.sha256


def test_it_keeps_api_tokens_working(saved, media, api_client):
    restore(saved.path)

    response = api_client(secret=saved.secret).post(
        "/api/v1/interactions",
        [
            {
                "external_id": "after-restore",
                "agent": "support-bot",
                "input": "Hi",
                "output": "Hello",
                "confidence": 0.2,
            }
        ],
    )

    assert response.status_code == 200
    assert response.json()["created"] == 1


def test_it_records_the_restore_in_the_audit_log(saved, media):
    restore(saved.path)

    event = AuditEvent.objects.get(action="data.restored")
    assert event.after["archive"] == saved.path.name
    assert event.after["rows"] > 0


def test_it_writes_a_manifest_with_migrations_counts_and_checksums(world, archive):
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
        digests = {n: hashlib.sha256(tar.extractfile(n).read()).hexdigest() for n in names[1:]}

    applied = MigrationRecorder(connection).applied_migrations()
    assert names[0] == "manifest.json"
    assert manifest["format_version"] == 1
    assert manifest["migrations"]["reviews"]["latest"] == max(
        name for app, name in applied if app == "reviews"
    )
    assert manifest["counts"]["reviews.review"] == Review.objects.count()
    assert manifest["counts"]["retraining.batchpair"] == BatchPair.objects.count()
    assert {m["name"]: m["sha256"] for m in manifest["members"]} == digests


# --- refusals: nothing written -----------------------------------------------------------------


def test_it_refuses_to_restore_into_a_database_with_data(world, archive):
    reviews = Review.objects.count()

    with pytest.raises(CommandError, match="already holds data"):
        restore(archive)

    assert Review.objects.count() == reviews
    assert not AuditEvent.objects.filter(action="data.restored").exists()


def members_of(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]


def write_archive(path: Path, members: list[tuple[str, bytes]], *, checksums: bool = False) -> None:
    """Writes `members` as an archive; with `checksums`, the manifest's member list, sizes
    and sha256 are made to match them (so only what is inside a member is wrong)."""
    if checksums:
        manifest = json.loads(members[0][1])
        by_name = {m["name"]: m for m in manifest["members"]}
        manifest["members"] = [
            {
                **by_name[name],
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for name, data in members[1:]
        ]
        members = [("manifest.json", json.dumps(manifest).encode()), *members[1:]]
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_it_rejects_a_member_whose_checksum_does_not_match(saved, tmp_path, media):
    members = [
        (n, d.replace(b"Refunds", b"Refundz") if n == "data/reviews.review.jsonl" else d)
        for n, d in members_of(saved.path)
    ]
    write_archive(tmp_path / "bad.tar.gz", members)

    with pytest.raises(CommandError, match="data/reviews.review.jsonl is corrupt"):
        restore(tmp_path / "bad.tar.gz")

    assert nothing_restored(media)


@pytest.mark.parametrize("keep", [0.3, 0.5, 0.9, -8], ids=["30%", "50%", "90%", "no-trailer"])
def test_it_rejects_a_truncated_archive(saved, tmp_path, media, keep):
    data = saved.path.read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[: int(len(data) * keep) if keep > 0 else keep])

    with pytest.raises(CommandError, match="damaged or truncated"):
        restore(tmp_path / "cut.tar.gz")

    assert nothing_restored(media)


def test_it_rejects_an_archive_missing_a_member(saved, tmp_path, media):
    members = [(n, d) for n, d in members_of(saved.path) if n != "data/reviews.review.jsonl"]
    write_archive(tmp_path / "short.tar.gz", members)

    with pytest.raises(CommandError, match="member data/reviews.review.jsonl is missing"):
        restore(tmp_path / "short.tar.gz")

    assert nothing_restored(media)


def test_it_rejects_another_format_version(saved, tmp_path, media):
    members = members_of(saved.path)
    manifest = json.loads(members[0][1]) | {"format_version": 99}
    write_archive(tmp_path / "v99.tar.gz", [("manifest.json", json.dumps(manifest).encode())])

    with pytest.raises(CommandError, match="format version 99 is not supported"):
        restore(tmp_path / "v99.tar.gz")

    assert nothing_restored(media)


def test_it_rejects_an_archive_from_another_migration_state(saved, tmp_path, media):
    members = members_of(saved.path)
    manifest = json.loads(members[0][1])
    manifest["migrations"]["reviews"]["applied"].append("9999_from_the_future")
    manifest["migrations"]["reviews"]["latest"] = "9999_from_the_future"
    write_archive(
        tmp_path / "future.tar.gz", [("manifest.json", json.dumps(manifest).encode()), *members[1:]]
    )

    with pytest.raises(CommandError, match="migration state differs for reviews"):
        restore(tmp_path / "future.tar.gz")

    assert nothing_restored(media)


def test_it_rejects_a_file_that_is_not_a_backup(tmp_path, media):
    (tmp_path / "notes.tar.gz").write_bytes(b"just some text")

    with pytest.raises(CommandError, match="damaged or truncated"):
        restore(tmp_path / "notes.tar.gz")


def break_a_review(members: list[tuple[str, bytes]]) -> tuple[list[tuple[str, bytes]], int]:
    """A `correct` review without its corrected output (a check constraint): returns the
    members and the broken line's number."""
    out = []
    for name, data in members:
        if name == "data/reviews.review.jsonl":
            lines = [json.loads(line) for line in data.splitlines()]
            number = next(i for i, r in enumerate(lines, 1) if r["verdict"] == "approve")
            lines[number - 1] |= {"verdict": "correct", "corrected_output": ""}
            data = b"".join(json.dumps(r).encode() + b"\n" for r in lines)
        out.append((name, data))
    return out, number


def test_it_names_the_member_and_line_of_a_row_that_fails(saved, tmp_path, media):
    members, number = break_a_review(members_of(saved.path))
    write_archive(tmp_path / "row.tar.gz", members, checksums=True)

    with pytest.raises(CommandError, match=rf"data/reviews.review.jsonl line {number}: "):
        restore(tmp_path / "row.tar.gz")


def test_it_rolls_back_rows_and_deletes_written_files_when_a_row_fails(saved, tmp_path, media):
    members = members_of(saved.path)
    # The files moved before the webhook deliveries, whose one row points at an alert that
    # does not exist: the files are in storage by the time that row fails.
    files = [(n, d) for n, d in members if n.startswith("files/")]
    tables = [(n, d) for n, d in members if not n.startswith("files/")]
    at = next(i for i, (n, _) in enumerate(tables) if n == "data/kpis.alertdelivery.jsonl")
    row = json.loads(tables[at][1].splitlines()[0]) | {"alert_id": 999_999}
    members = [
        *tables[:at],
        *files,
        ("data/kpis.alertdelivery.jsonl", json.dumps(row).encode() + b"\n"),
        *tables[at + 1 :],
    ]
    write_archive(tmp_path / "late.tar.gz", members, checksums=True)

    with pytest.raises(CommandError, match="data/kpis.alertdelivery.jsonl line 1: "):
        restore(tmp_path / "late.tar.gz")

    assert nothing_restored(media)


def test_it_refuses_to_overwrite_an_existing_archive(saved):
    size = saved.path.stat().st_size

    with pytest.raises(CommandError, match="already exists"):
        backup(saved.path)

    assert saved.path.stat().st_size == size


# --- the commands' output ----------------------------------------------------------------------


def test_the_backup_command_prints_a_one_line_summary(world, tmp_path):
    output = backup(tmp_path / "b.tar.gz")

    assert output.count("\n") == 1
    assert output.startswith(f"backed up to {tmp_path / 'b.tar.gz'}: 6 users, 2 agents, ")
    assert f"{Review.objects.count()} reviews, {TrainingPair.objects.count()} training pairs" in (
        output
    )
    assert "4 batches, 6 batch files" in output


def test_the_restore_command_prints_a_one_line_summary(saved, media):
    output = restore(saved.path)

    assert output.count("\n") == 1
    # 8 support and 4 legal items, one confident interaction.
    assert output.startswith(f"restored from {saved.path}: 6 users, 2 agents, 13 interactions, ")
    assert "4 batches, 6 batch files" in output
