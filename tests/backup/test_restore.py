"""restore_data: a real round trip on PostgreSQL (back up the world of
tests/backup/support.py, wipe the database and storage, restore), and the archives a restore
must refuse without writing anything."""

import hashlib
import json

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError

from agents.models import Agent, Interaction
from backup.tables import tables
from core.models import AuditEvent
from evals.models import Comparison, ComparisonVote, RegressionAnswer, RegressionRun
from retraining.models import TrainingPair
from reviews.models import Criterion, Review, ReviewItem, Rubric, Score
from tests.backup.support import (
    PAIR_SCORES,
    TOOL_STEPS,
    User,
    backup,
    members_of,
    nothing_restored,
    restore,
    snapshot,
    stored_files,
    wipe,
    write_archive,
)
from tests.factories import ReviewItemFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_restores_every_row_with_its_id(world, tmp_path, media):
    before = snapshot()
    backup(tmp_path / "b.tar.gz")
    wipe(media)
    assert snapshot() != before

    restore(tmp_path / "b.tar.gz")

    assert snapshot() == before


def test_it_restores_rubric_scores_and_evaluations_byte_for_byte(world, tmp_path, media):
    rubric_and_evals = (Rubric, Criterion, Score, Comparison, ComparisonVote)
    assert all(m.objects.exists() for m in (*rubric_and_evals, RegressionRun, RegressionAnswer))
    settled = RegressionAnswer.objects.get(comparison__isnull=False)
    assert settled.comparison.votes.exists()
    assert TrainingPair.objects.filter(scores=PAIR_SCORES).exists()
    before = snapshot()
    backup(tmp_path / "b.tar.gz")
    wipe(media)
    assert not any(m.objects.exists() for m in rubric_and_evals)

    restore(tmp_path / "b.tar.gz")

    assert snapshot() == before
    restored = RegressionAnswer.objects.get(pk=settled.pk)
    assert (restored.run_id, restored.item_id, restored.comparison_id) == (
        settled.run_id,
        settled.item_id,
        settled.comparison_id,
    )
    assert Criterion.objects.get(key="tone").help_text == 'Polite, "warm" \\ never curt\t✅'


def test_every_table_comes_after_the_tables_it_points_at():
    order = {t.model: n for n, t in enumerate(tables())}
    for n, table in enumerate(tables()):
        for f in table.fields():
            if f.is_relation and f.name not in table.refs:
                assert f.related_model in order, f"{table.label}.{f.name}: not archived"
                assert order[f.related_model] <= n, f"{table.label}.{f.name}: restored later"


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


def test_it_restores_the_tool_steps_of_interactions_and_pairs(saved, media):
    restore(saved.path)

    steps = list(Interaction.objects.order_by("pk").values_list("steps", flat=True))
    assert steps.count(TOOL_STEPS) == 3 and steps.count([]) == len(steps) - 3
    pairs = TrainingPair.objects.select_related("interaction")
    assert TOOL_STEPS in [pair.steps for pair in pairs]
    assert all(pair.steps == pair.interaction.steps for pair in pairs)


def test_it_records_the_restore_in_the_audit_log(saved, media):
    restore(saved.path)

    event = AuditEvent.objects.get(action="data.restored")
    assert event.after["archive"] == saved.path.name
    assert event.after["rows"] > 0


# --- refusals: nothing written -----------------------------------------------------------------


def test_it_refuses_to_restore_into_a_database_with_data(world, archive):
    reviews = Review.objects.count()

    with pytest.raises(CommandError, match="already holds data"):
        restore(archive)

    assert Review.objects.count() == reviews
    assert not AuditEvent.objects.filter(action="data.restored").exists()


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


# --- the command's output ------------------------------------------------------------------------


def test_it_prints_a_one_line_summary_of_the_restore(saved, media):
    output = restore(saved.path)

    assert output.count("\n") == 1
    # 8 support and 4 legal items, one confident interaction.
    assert output.startswith(f"restored from {saved.path}: 6 users, 2 agents, 13 interactions, ")
    assert "4 batches, 6 batch files" in output
