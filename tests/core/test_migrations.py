"""The layout migrations, end to end: a database at today's main (before the layout), filled
through its historical models, migrated to the new layout, and every row checked.

Seven models left the reviews app keeping their tables (agents: Agent, Interaction,
FeedbackEvent; accounts: ReviewerProfile, ApiToken; core: AuditEvent, OutboxMessage). Only
Django's model state moves, plus two data changes: the content types follow the models
(reviews 0006) and pending outbox messages name the tasks where they live now (core 0002).

Each test starts from a database rebuilt from the first migration (django-test-migrations'
`migrator`); its finalizer migrates the test database to the latest state again, so the
tests after these find it as they expect.
"""

import copy
import hashlib
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.apps import apps as global_apps
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from accounts.models import ApiToken, ReviewerProfile
from agents.models import Agent, FeedbackEvent, Interaction
from core.models import AuditEvent, OutboxMessage
from kpis.models import Alert, KpiRun, KpiSnapshot
from retraining.models import BatchPair, ExportBatch, TrainingPair
from reviews.models import ReviewItem

# Today's main: the state before the layout. The apps not named here are at their latest.
TODAYS_MAIN = [
    ("reviews", "0005_outbox_and_auto_assign"),
    ("kpis", "0002_stats_runs_cursors_deliveries"),
    ("retraining", "0002_batches_build_lease_and_membership"),
    ("core", None),
    ("accounts", None),
    ("agents", None),
    ("evals", None),
]
# Where each moved model's content type goes (written out here, not imported from the
# migration under test).
MOVED = {
    "agent": "agents",
    "interaction": "agents",
    "feedbackevent": "agents",
    "reviewerprofile": "accounts",
    "apitoken": "accounts",
    "auditevent": "core",
    "outboxmessage": "core",
}
RENAMED_TASKS = {
    "reviews.tasks.items_autoassign": "console.tasks.items_autoassign",
    "reviews.tasks.outbox_sweep": "core.tasks.outbox_sweep",
}
# Apps of other projects (at their latest throughout): their tables are theirs to migrate.
OUTSIDE = {"axes"}
STATUSES = ("pending", "claimed", "needs_second_review", "disputed", "done")
T = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def _todays_main_targets() -> list[tuple[str, str | None]]:
    named = {app for app, _ in TODAYS_MAIN}
    leaves = MigrationLoader(connection).graph.leaf_nodes()
    return TODAYS_MAIN + [node for node in leaves if node[0] not in named]


def _rows(apps) -> dict[str, list[dict]]:
    """Every row of every table the models of `apps` map to (many-to-many tables
    included), keyed by table, in primary key order."""
    tables = {}
    for model in apps.get_models(include_auto_created=True):
        opts = model._meta
        if opts.app_label in OUTSIDE:
            continue
        fields = [f.attname for f in opts.concrete_fields]
        order = [f.attname for f in opts.pk_fields]
        tables[opts.db_table] = list(model._base_manager.order_by(*order).values(*fields))
    return tables


def _after_the_move(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """`rows` as the layout migrations should leave them: the moved models' content types
    name their new app; the outbox names the tasks where they live now. The later
    migrations' new columns hold their defaults (accounts 0002: API tokens for every
    agent; agents 0002 and retraining 0004: no tool steps)."""
    expected = copy.deepcopy(rows)
    for token in expected["reviews_apitoken"]:
        token["agent_slugs"] = []
    for table in ("reviews_interaction", "retraining_trainingpair"):  # agents 0002, retraining 0004
        for row in expected[table]:
            row["steps"] = []
    for row in expected["retraining_trainingpair"]:  # retraining 0005: no rubric scores
        row["scores"] = {}
    for row in expected["reviews_interaction"]:  # agents 0003: nothing redacted
        row["redactions"] = {}
    for row in expected["reviews_agent"]:  # agents 0003: no redaction policy
        row["redaction"] = {}
    for row in expected["reviews_reviewitem"]:  # reviews 0010: no deadline, nothing escalated
        row.update(due_at=None, sla_near_at=None, sla_level=0)
    for ct in expected["django_content_type"]:
        if ct["app_label"] == "reviews" and ct["model"] in MOVED:
            ct["app_label"] = MOVED[ct["model"]]
    for message in expected["reviews_outboxmessage"]:
        message["task"] = RENAMED_TASKS.get(message["task"], message["task"])
    return expected


# Models added after the layout (rubrics: reviews 0009; the evals app): `migrate` makes their
# tables, empty, and post_migrate their content types and permissions, none of which the
# layout's rows know of.
LATER_MODELS = {
    ("reviews", "rubric"),
    ("reviews", "criterion"),
    ("reviews", "score"),
    ("evals", "comparison"),
    ("evals", "comparisonvote"),
    ("evals", "regressionrun"),
    ("evals", "regressionanswer"),
    ("reviews", "deadline"),
    ("reviews", "slabreach"),
    ("reviews", "sladigest"),
    ("accounts", "identity"),  # accounts 0003: single sign-on identities
    ("agents", "redactedvalue"),  # agents 0003: redaction placeholders
}


def _without_later_models(rows: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """`rows` without the LATER_MODELS' tables (which must be empty), content types and
    permissions."""
    rows = dict(rows)
    for app, model in LATER_MODELS:
        assert rows.pop(f"{app}_{model}", []) == [], f"{app}_{model}"
    later = {
        ct["id"]
        for ct in rows["django_content_type"]
        if (ct["app_label"], ct["model"]) in LATER_MODELS
    }
    rows["django_content_type"] = [c for c in rows["django_content_type"] if c["id"] not in later]
    rows["auth_permission"] = [
        p for p in rows["auth_permission"] if p["content_type_id"] not in later
    ]
    return rows


def _assert_same_rows(actual: dict, expected: dict) -> None:
    actual = _without_later_models(actual)
    assert sorted(actual) == sorted(expected)
    for table in expected:
        assert actual[table] == expected[table], table


def _fill(apps) -> SimpleNamespace:
    """A row in every table of today's main, written through its historical models, with
    values other than the defaults wherever a field has one."""
    get = apps.get_model
    ContentType_, Permission = get("contenttypes", "ContentType"), get("auth", "Permission")
    # What post_migrate makes on a real database (muted by the migrator): a content type and
    # the four default permissions per model.
    for model in apps.get_models():
        ct = ContentType_.objects.create(
            app_label=model._meta.app_label, model=model._meta.model_name
        )
        for action in ("add", "change", "delete", "view"):
            Permission.objects.create(
                content_type=ct,
                codename=f"{action}_{model._meta.model_name}",
                name=f"Can {action} {model._meta.verbose_name}",
            )
    content_types = {ct.model: ct.pk for ct in ContentType_.objects.filter(app_label="reviews")}

    User, Group = get("auth", "User"), get("auth", "Group")

    def user(username: str, **extra):
        return User.objects.create(
            username=username,
            email=f"{username}@example.com",
            first_name=username.title(),
            password="md5$salt$0123456789abcdef",
            date_joined=T - timedelta(days=30),
            **extra,
        )

    rita, oscar, mo, pipeline = user("rita"), user("oscar"), user("mo"), user("pipeline")
    lee = user("lee", is_staff=True, last_login=T)
    rita.groups.add(Group.objects.get(name="reviewer"))
    change_agent = Permission.objects.get(
        content_type__app_label="reviews", codename="change_agent"
    )
    lee.user_permissions.add(change_agent)
    Group.objects.get(name="ml").permissions.add(
        Permission.objects.get(content_type__app_label="reviews", codename="view_interaction")
    )
    get("sessions", "Session").objects.create(
        session_key="k" * 32, session_data="e30:opaque", expire_date=T + timedelta(days=14)
    )
    get("reviews", "ReviewerProfile").objects.create(
        user=rita, domains=["billing", "support"], daily_capacity=35, active=False
    )
    get("reviews", "ReviewerProfile").objects.create(user=oscar, domains=["billing"])
    get("reviews", "ApiToken").objects.create(
        user=pipeline,
        name="ingest pipeline",
        key_hash=hashlib.sha256(b"cdk_secret").hexdigest(),
        prefix="cdk_4f2a",
        last_used_at=T,
        revoked_at=T + timedelta(days=1),
    )

    Agent_ = get("reviews", "Agent")
    bot = Agent_.objects.create(
        slug="support-bot",
        name="Support bot",
        kind="chat",
        domain="billing",
        confidence_threshold=0.55,
        audit_rate=0.125,
        required_reviews=2,
        review_intents=["refund", "cancel"],
        review_domains=["legal"],
        guidelines="Be *kind*.",
        auto_assign=True,
        alert_thresholds={"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}},
    )
    Agent_.objects.filter(pk=bot.pk).update(created_at=T - timedelta(days=60))
    recs = Agent_.objects.create(slug="recs", name="Recommender", kind="recommender")
    get("admin", "LogEntry").objects.create(
        action_time=T,
        user=lee,
        content_type_id=content_types["agent"],
        object_id=str(bot.pk),
        object_repr="support-bot",
        action_flag=2,
        change_message='[{"changed": {"fields": ["Auto assign"]}}]',
    )

    Interaction_, ReviewItem_ = get("reviews", "Interaction"), get("reviews", "ReviewItem")
    Interaction_.objects.create(
        agent=recs, external_id="r-1", input="Shoes?", output="Boots.", confidence=0.9,
        created_at=T,
    )  # fmt: skip
    items = {}
    for n, status in enumerate(STATUSES, start=1):
        interaction = Interaction_.objects.create(
            agent=bot,
            external_id=f"ext-{n}",
            agent_version="v2",
            conversation_id=f"conv-{n}",
            input=f"Question {n}?",
            context=[{"role": "user", "content": "Hi"}, {"role": "assistant", "n": n}],
            output=f"Answer {n}.",
            confidence=n / 10,
            intent="refund",
            domain="billing",
            resolved=n % 2 == 0,
            escalated=n == 3,
            sentiment=-0.5 + n / 5,
            turns=n + 1,
            metadata={"channel": "web", "tags": ["vip"], "n": n},
            created_at=T + timedelta(minutes=n),
        )
        decided = status == "done"
        items[status] = ReviewItem_.objects.create(
            interaction=interaction,
            agent=bot,
            domain="billing",
            confidence=interaction.confidence,
            source_created_at=interaction.created_at,
            reason="rule" if n % 2 else "low_confidence",
            reason_detail=f"rule {n}",
            priority=n,
            status=status,
            required_reviews=2,
            assigned_to=None if status == "pending" else rita,
            claimed_by=rita if status == "claimed" else None,
            lease_expires_at=T + timedelta(minutes=15) if status == "claimed" else None,
            final_verdict="correct" if decided else "",
            decided_at=T + timedelta(hours=1) if decided else None,
            version=n,
        )
    done = items["done"]
    get("reviews", "FeedbackEvent").objects.create(
        interaction=done.interaction,
        agent=bot,
        kind="thumbs_down",
        item_ref="sku-9",
        value=0.25,
        created_at=T + timedelta(hours=2),
        dedupe_key=hashlib.sha256(b"feedback-1").hexdigest(),
    )
    tone = get("reviews", "ErrorCategory").objects.create(
        slug="rudeness", name="Rudeness", description="Rude.", active=False, position=42
    )
    Review_ = get("reviews", "Review")
    reviews = [
        Review_.objects.create(
            item=done, reviewer=reviewer, verdict="correct", corrected_output="Better.",
            error_category=tone, notes=f"by {reviewer.username}", seconds_spent=40 + k,
            is_adjudication=k == 1,
        )
        for k, reviewer in enumerate((rita, oscar))
    ]  # fmt: skip
    Review_.objects.create(item=items["disputed"], reviewer=oscar, verdict="reject")
    get("reviews", "AuditEvent").objects.create(
        actor=rita,
        action="item.decide",
        target_type="reviewitem",
        target_id=done.pk,
        before={"status": "claimed", "version": 4},
        after={"status": "done", "version": 5},
    )

    pair = get("retraining", "TrainingPair").objects.create(
        item=done,
        interaction=done.interaction,
        agent=bot,
        agent_version="v2",
        source="correct",
        input="Question 5?",
        context=[{"role": "user", "content": "Hi"}],
        output="Better.",
        rejected_output="Answer 5.",
        error_category=tone,
        content_hash=hashlib.sha256(b"Question 5?\x1fBetter.").hexdigest(),
    )
    pair.reviews.add(*reviews)
    pair.reviewers.add(rita, oscar)
    ExportBatch_ = get("retraining", "ExportBatch")
    batch = ExportBatch_.objects.create(
        agent=bot,
        format="preference",
        filters={"sources": ["correct"], "agent_versions": ["v2"]},
        validation_share=0.25,
        cutoff_id=pair.pk,
        status="ready",
        progress=100,
        attempts=2,
        heartbeat_at=T,
        row_count=1,
        counts={"train": 1, "validation": 0},
        file="exports/batch-1.jsonl",
        file_size=2048,
        manifest_file="exports/batch-1.manifest.json",
        sha256="ab" * 32,
        manifest={"rows": 1, "format": "preference"},
        created_by=mo,
        started_at=T,
        finished_at=T + timedelta(seconds=3),
        trained_agent_version="v3",
    )
    ExportBatch_.objects.create(
        agent=recs, dataset="feedback", format="csv", status="failed", failure_reason="disk full",
        lease_token="tok-1", created_by=mo,
    )  # fmt: skip
    get("retraining", "BatchPair").objects.create(batch=batch, pair=pair, duplicate=True)

    get("kpis", "KpiSnapshot").objects.create(
        agent=bot, agent_version="v2", date=date(2026, 11, 20), stats={"n": 12, "resolved": 9}
    )
    get("kpis", "KpiCursor").objects.create(
        source="interaction", last_id=6, history=[["2026-11-20T09:30:00+00:00", 6]]
    )
    run = get("kpis", "KpiRun").objects.create(
        state="done", trigger="button", mode="range", agent=bot, since=date(2026, 11, 1),
        requested_by=lee, total_steps=10, done_steps=10, days=3, rows=6, alerts_raised=1,
        alerts_resolved=1, error="", started_at=T, finished_at=T + timedelta(minutes=1),
    )  # fmt: skip
    Alert_ = get("kpis", "Alert")
    alert = Alert_.objects.create(
        agent=bot, kpi="resolution_rate", threshold={"below": 0.7}, value=0.61, n=80
    )
    Alert_.objects.create(
        agent=bot, kpi="thumbs_down_rate", threshold={"above": 0.2}, value=0.3, n=55,
        resolved_at=T, resolved_value=0.1,
    )  # fmt: skip
    delivery = get("kpis", "AlertDelivery").objects.create(
        alert=alert, event="raised", url="https://hooks.example.com/kpi",
        payload={"kpi": "resolution_rate", "value": 0.61}, state="failed", attempts=5,
        next_attempt_at=T, last_status=502, last_error="Bad Gateway",
    )  # fmt: skip

    # The tasks today's main sends through the outbox, and the sweep.
    for task, args in {
        "reviews.tasks.items_autoassign": [],
        "reviews.tasks.outbox_sweep": [],
        "kpis.tasks.run_recompute": [run.pk],
        "kpis.tasks.deliver_alert": [delivery.pk],
        "retraining.tasks.build_batch": [batch.pk],
    }.items():
        get("reviews", "OutboxMessage").objects.create(
            task=task,
            args=args,
            attempts=3,
            next_attempt_at=T + timedelta(minutes=5),
            last_error="Error 111 connecting to redis. Connection refused.",
        )
    return SimpleNamespace(
        content_types=content_types,
        change_agent=change_agent.pk,
        lee=lee.pk,
        rita=rita.pk,
        bot=bot.pk,
        items={status: item.pk for status, item in items.items()},
        pair=pair.pk,
        batch=batch.pk,
    )


@pytest.fixture
def todays_main(migrator):
    """A database at today's main, built from the first migration and filled: its
    historical apps, what `_fill` made, and every row."""
    # The migrator's clean start runs a prefix of the full plan, which would include the new
    # apps' first migrations: reviews 0005 first, then the exact state by target.
    migrator.apply_initial_migration(("reviews", "0005_outbox_and_auto_assign"))
    state = migrator.apply_tested_migration(_todays_main_targets())
    made = _fill(state.apps)
    return SimpleNamespace(migrator=migrator, made=made, rows=_rows(state.apps))


@pytest.fixture
def moved(todays_main):
    """`todays_main` migrated to the new layout as a deploy does (`migrate`, post_migrate
    receivers included)."""
    call_command("migrate", verbosity=0)
    ContentType.objects.clear_cache()  # ids cached by earlier tests of the session
    return todays_main


@pytest.mark.django_db
def test_it_has_no_model_change_without_a_migration():
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert out.getvalue().strip() == "No changes detected"


@pytest.mark.postgres
@pytest.mark.slow
def test_it_fills_every_table_of_todays_main(todays_main):
    empty = [table for table, rows in todays_main.rows.items() if not rows]
    assert empty == []
    assert "reviews_agent" in todays_main.rows
    assert "retraining_trainingpair_reviewers" in todays_main.rows


@pytest.mark.postgres
@pytest.mark.slow
def test_it_keeps_every_row_of_every_table(moved):
    _assert_same_rows(_rows(global_apps), _after_the_move(moved.rows))


@pytest.mark.postgres
@pytest.mark.slow
def test_it_reads_the_rows_through_the_new_models(moved):
    made = moved.made
    bot = Agent.objects.get(slug="support-bot")
    assert bot.pk == made.bot
    assert (bot.kind, bot.domain, bot.required_reviews, bot.auto_assign) == (
        "chat",
        "billing",
        2,
        True,
    )
    assert (bot.confidence_threshold, bot.audit_rate) == (0.55, 0.125)
    assert bot.review_intents == ["refund", "cancel"]
    assert bot.alert_thresholds == {"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}}
    assert bot.created_at == T - timedelta(days=60)

    item = ReviewItem.objects.get(pk=made.items["done"])
    assert item.interaction.agent == bot
    assert item.agent == bot
    assert item.interaction.external_id == "ext-5"
    assert item.interaction.context == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "n": 5},
    ]
    assert item.interaction.metadata == {"channel": "web", "tags": ["vip"], "n": 5}
    assert (item.interaction.sentiment, item.interaction.turns) == (0.5, 6)
    assert Interaction.objects.get(external_id="r-1").agent.slug == "recs"
    statuses = dict(bot.review_items.values_list("pk", "status"))
    assert statuses == {pk: status for status, pk in made.items.items()}
    claimed = ReviewItem.objects.get(pk=made.items["claimed"])
    assert claimed.claimed_by.username == "rita"

    feedback = FeedbackEvent.objects.get()
    assert (feedback.interaction, feedback.agent, feedback.kind) == (
        item.interaction,
        bot,
        "thumbs_down",
    )
    assert [r.verdict for r in item.reviews.all()] == ["correct", "correct"]
    assert item.reviews.get(is_adjudication=True).reviewer.username == "oscar"

    User = get_user_model()
    rita = User.objects.get(username="rita")
    assert rita.reviewer_profile == ReviewerProfile.objects.get(daily_capacity=35)
    assert rita.reviewer_profile.domains == ["billing", "support"]
    assert rita.reviewer_profile.active is False
    token = ApiToken.objects.get()
    assert (token.user.username, token.prefix) == ("pipeline", "cdk_4f2a")
    assert token.revoked_at == T + timedelta(days=1)
    audit = AuditEvent.objects.get()
    assert (audit.actor, audit.target_id, audit.after) == (
        rita,
        item.pk,
        {"status": "done", "version": 5},
    )

    pair = TrainingPair.objects.get()
    assert (pair.item, pair.interaction, pair.agent) == (item, item.interaction, bot)
    assert sorted(u.username for u in pair.reviewers.all()) == ["oscar", "rita"]
    assert set(pair.reviews.all()) == set(item.reviews.all())
    batch = ExportBatch.objects.get(pk=made.batch)
    assert batch.agent == bot
    assert list(batch.pairs.all()) == [pair]
    assert BatchPair.objects.get(batch=batch).duplicate is True
    assert bot.export_batches.get() == batch

    assert KpiSnapshot.objects.get().agent == bot
    assert KpiRun.objects.get().agent == bot
    assert sorted(bot.alerts.values_list("kpi", flat=True)) == [
        "resolution_rate",
        "thumbs_down_rate",
    ]
    assert Alert.objects.get(resolved_at=None).deliveries.get().last_status == 502


@pytest.mark.postgres
@pytest.mark.slow
def test_it_moves_the_content_types_keeping_their_ids(moved):
    made = moved.made
    for model, app_label in MOVED.items():
        ct = ContentType.objects.get(pk=made.content_types[model])
        assert (ct.app_label, ct.model) == (app_label, model)
    assert not ContentType.objects.filter(app_label="reviews", model__in=MOVED).exists()
    assert ContentType.objects.get_for_model(Agent).pk == made.content_types["agent"]
    assert (
        ContentType.objects.get_for_model(OutboxMessage).pk == made.content_types["outboxmessage"]
    )
    # The permission granted on today's main is the same row and means the same thing.
    lee = get_user_model().objects.get(pk=made.lee)
    assert list(lee.user_permissions.values_list("pk", flat=True)) == [made.change_agent]
    assert lee.has_perm("agents.change_agent")
    assert not lee.has_perm("agents.delete_agent")
    assert LogEntry.objects.get().get_edited_object() == Agent.objects.get(pk=made.bot)


@pytest.mark.postgres
@pytest.mark.slow
def test_it_renames_the_tasks_of_pending_outbox_messages(moved):
    from config.celery import app

    tasks = sorted(OutboxMessage.objects.values_list("task", flat=True))
    assert tasks == [
        "console.tasks.items_autoassign",
        "core.tasks.outbox_sweep",
        "kpis.tasks.deliver_alert",
        "kpis.tasks.run_recompute",
        "retraining.tasks.build_batch",
    ]
    # Every pending message names a task a worker knows.
    app.loader.import_default_modules()
    assert [task for task in tasks if task not in app.tasks] == []


@pytest.mark.postgres
@pytest.mark.slow
def test_it_keeps_every_row_when_migrating_back(moved):
    targets = _todays_main_targets()
    moved.migrator.apply_tested_migration(targets)
    # Read through the graph's state at the targets: the state Django returns after
    # migrating backwards still holds the unapplied apps' models, with columns dropped by
    # then (accounts 0002's API token scope).
    state = MigrationLoader(connection).project_state([t for t in targets if t[1]])
    back = _rows(state.apps)
    _assert_same_rows(back, moved.rows)
    assert sorted(r["task"] for r in back["reviews_outboxmessage"])[-2:] == [
        "reviews.tasks.items_autoassign",
        "reviews.tasks.outbox_sweep",
    ]
    agent_ct = next(ct for ct in back["django_content_type"] if ct["model"] == "agent")
    assert (agent_ct["id"], agent_ct["app_label"]) == (moved.made.content_types["agent"], "reviews")


@pytest.mark.postgres
@pytest.mark.slow
def test_it_moves_forward_again_after_a_rollback_with_the_migrate_command(moved):
    # Rolling back one app at a time runs post_migrate in between, which makes content
    # types for the new apps again (the models are in both apps' state for a while).
    for app_label in ("agents", "accounts", "core"):
        call_command("migrate", app_label, "zero", verbosity=0)
    call_command("migrate", verbosity=0)
    ContentType.objects.clear_cache()

    _assert_same_rows(_rows(global_apps), _after_the_move(moved.rows))
    lee = get_user_model().objects.get(pk=moved.made.lee)
    assert lee.has_perm("agents.change_agent")
