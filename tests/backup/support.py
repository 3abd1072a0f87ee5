"""The world the backup tests archive, and the helpers that back up, restore, wipe and take
archives apart.

`build_world` builds a small world the real way (factories for users, agents and items; the
review services for claims and decisions; the retraining services for batches; the KPI
recompute). `wipe` empties the database with `flush` (which also resets every id sequence
and lets `migrate`'s post-migrate hooks recreate groups, permissions and the default
taxonomy, as in a freshly migrated database) and the storage files.
"""

import hashlib
import io
import json
import shutil
import tarfile
from io import StringIO
from pathlib import Path

from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core import serializers
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db.models import Q
from django.utils import timezone

from accounts import services as account_services
from agents.models import Agent, Interaction
from core.models import AuditEvent
from evals.models import Comparison, ComparisonVote, RegressionAnswer, RegressionRun
from ingest.services import feedback_ingest
from kpis import services as kpi_services
from kpis.models import Alert, AlertDelivery
from retraining import services as batch_services
from retraining.models import ExportBatch, TrainingPair
from reviews import services
from reviews.models import Criterion, Review, ReviewItem, Rubric, Score
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory, UserFactory

User = get_user_model()
# A turn's tool calls and results as ingest stores them (ingest/messages.py), with text that
# COPY and JSON must carry exactly.
TOOL_STEPS = [
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_1", "name": "lookup_order", "arguments": '{"order":"A-1"}'}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": 'livré\t"à 10h" \\ 日本語\n✅'},
]
# Every model whose rows the archive must bring back, ids included: the users and every
# model of the project's apps (groups and permissions are compared by name: their ids
# belong to each database).
MODELS = [
    User,
    *[
        m
        for app in ("core", "accounts", "agents", "reviews", "retraining", "kpis", "evals")
        for m in apps.get_app_config(app).get_models()
    ],
]


def build_world() -> dict:
    """Users with roles, two agents (one four-eyes), items in every state (some with tool
    steps), reviews with corrections and an adjudication, pairs, three ready batches and a
    queued one, feedback, an API token, KPI snapshots, an alert with its webhook delivery,
    and rubric scores and evaluations (`add_rubrics_and_evals`). Returns the pipeline's
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
            interaction__steps=TOOL_STEPS if n % 3 == 0 else [],
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
    add_rubrics_and_evals()
    add_deadlines(support, lee)
    add_sso_identity(rita)
    add_redactions(support)
    # The world is what the docstring says it is.
    assert set(ReviewItem.objects.values_list("status", flat=True)) == set(ReviewItem.Status)
    assert {p.reviews.count() for p in TrainingPair.objects.filter(agent=legal)} == {2}
    assert set(TrainingPair.objects.values_list("source", flat=True)) == {"approve", "correct"}
    assert TrainingPair.objects.filter(steps=TOOL_STEPS).exists()
    return {"secret": secret, "ml": mo}


# Rubric scores of a pair (reviews.rubrics.Scored.as_dict): criterion key → value, the version.
PAIR_SCORES = {"accuracy": 1, "tone": 4, "_rubric_version": 1}


def add_deadlines(agent, lead) -> None:
    """Review deadlines (issue 16): a rule, an item with a due time that breached, and a
    digest sent to the lead."""
    from datetime import UTC, date, datetime

    from reviews.models import Deadline, SlaBreach, SlaDigest

    Deadline.objects.create(agent=agent, domain="", hours=4, working_hours=True)
    Deadline.objects.create(agent=None, domain="legal", hours=1.5, working_hours=False)
    item = ReviewItem.objects.filter(agent=agent).order_by("pk").first()
    due = datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    ReviewItem.objects.filter(pk=item.pk).update(
        due_at=due, sla_near_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC), sla_level=2
    )
    SlaBreach.objects.create(
        item=item, agent=agent, domain=item.domain, due_at=due, breached_at=due, emailed_at=due
    )
    SlaDigest.objects.create(user=lead, day=date(2026, 11, 21), sent_at=due)


def add_redactions(agent) -> None:
    """Personal data redaction (issue 16): the agent's policy, an interaction redacted at
    ingest (its counts) and its conversation's placeholders, one original kept, one not."""
    from agents.models import Agent, Interaction, RedactedValue

    Agent.objects.filter(pk=agent.pk).update(
        redaction={"types": ["email", "phone"], "keep_originals": True, "regions": ["GB"]}
    )
    interaction = Interaction.objects.filter(agent=agent).order_by("pk").first()
    Interaction.objects.filter(pk=interaction.pk).update(redactions={"email": 2, "phone": 1})
    key = (
        f"c:{interaction.conversation_id}"
        if interaction.conversation_id
        else (f"i:{interaction.external_id}")
    )
    RedactedValue.objects.create(
        agent=agent,
        conversation_key=key,
        kind="email",
        number=1,
        digest="a" * 64,
        original="jan@example.nl",
    )
    RedactedValue.objects.create(
        agent=agent, conversation_key=key, kind="phone", number=1, digest="b" * 64, original=None
    )


def add_sso_identity(user) -> None:
    """A single sign-on identity (issue 16): the user's account at an OpenID Connect provider."""
    from datetime import UTC, datetime

    from accounts.models import Identity

    Identity.objects.create(
        user=user,
        issuer="https://idp.example.com/realms/coachdesk",
        subject="f3b7c1e0-sso-subject",
        last_login_at=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
    )


def add_rubrics_and_evals() -> None:
    """Rows of the rubric and evals tables, written directly (this is about their rows, not
    the services that make them): two rubric versions of the support bot with their
    criteria, scores of its decided reviews (and those scores copied to their pairs); a
    regression comparison decided by a vote and a pending comparison of two versions; a
    regression run with one answer settled by that comparison and one still pending."""
    rita, oscar, lee, mo = (User.objects.get(username=n) for n in ("rita", "oscar", "lee", "mo"))
    support = Agent.objects.get(slug="support-bot")
    first = Rubric.objects.create(agent=support, version=1, created_by=lee)
    accuracy = Criterion.objects.create(
        rubric=first, key="accuracy", name="Accuracy", kind=Criterion.Kind.PASS_FAIL
    )
    tone = Criterion.objects.create(
        rubric=first,
        key="tone",
        name="Tone",
        help_text='Polite, "warm" \\ never curt\t✅',
        kind=Criterion.Kind.SCALE,
        required=False,
        position=1,
    )
    second = Rubric.objects.create(agent=support, version=2, created_by=None)
    Criterion.objects.create(rubric=second, key="accuracy", name="Accuracy", kind="pass_fail")
    scored = Review.objects.filter(
        item__interaction__agent=support, verdict__in=["approve", "correct"]
    ).order_by("pk")
    assert len(scored) >= 2
    for review in scored:
        Score.objects.create(review=review, criterion=accuracy, value=PAIR_SCORES["accuracy"])
        Score.objects.create(review=review, criterion=tone, value=PAIR_SCORES["tone"])
    TrainingPair.objects.filter(reviews__in=scored).update(scores=PAIR_SCORES)

    corrected = (
        ReviewItem.objects.filter(interaction__agent=support, reviews__verdict="correct")
        .order_by("pk")
        .distinct()
    )
    decided = Comparison.objects.create(
        agent=support,
        kind=Comparison.Kind.REGRESSION,
        interaction=corrected[0].interaction,
        input=corrected[0].interaction.input,
        context=[{"role": "user", "content": "Hi\t日本語"}],
        answer_a="Refunds take 5 days. ✅",
        version_a="v3",
        answer_b="Refunds take 5 days.",
        version_b="reference",
        a_on_left=True,
        status=Comparison.Status.DONE,
        outcome=Comparison.Choice.A,
        decided_at=timezone.now(),
        version=2,
    )
    ComparisonVote.objects.create(
        comparison=decided,
        reviewer=rita,
        choice=Comparison.Choice.A,
        a_on_left=True,
        reason='A is "kinder"\n',
        seconds_spent=17,
    )
    Comparison.objects.create(
        agent=support,
        kind=Comparison.Kind.VERSIONS,
        external_id="cmp-1",
        domain="support",
        input="Where is my order?",
        answer_a="On its way.",
        version_a="v1",
        answer_b="It left the warehouse today.",
        version_b="v2",
        a_on_left=False,
        priority=3,
        assigned_to=oscar,
    )
    run = RegressionRun.objects.create(
        agent=support,
        agent_version="v3",
        filters={"error_category": "factual-error"},
        created_by=mo,
    )
    RegressionAnswer.objects.create(
        run=run,
        item=corrected[0],
        answer="Refunds take 5 days. ✅",
        matched_by="review",
        outcome=RegressionAnswer.Outcome.FIXED,
        comparison=decided,
    )
    RegressionAnswer.objects.create(run=run, item=corrected[1], answer="Refunds take a week.")


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
