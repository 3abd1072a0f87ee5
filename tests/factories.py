"""factory_boy factories for every domain model, one per model, in the order of the apps.

Status traits set the fields a real transition would have set (a claimed item has a holder
and a live lease, a ready batch has its file and checksum, ...), so a test can start from any
state without driving the services there: `ReviewItemFactory(claimed=True)`,
`ExportBatchFactory(ready=True)`, `KpiRunFactory(failed=True)`. They only write rows: tests
of the transitions themselves go through the services.
"""

import hashlib
from datetime import UTC, datetime, timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from accounts.models import ApiToken, Identity, ReviewerProfile, Role
from agents.models import Agent, FeedbackEvent, Interaction, RedactedValue
from core.models import AuditEvent, OutboxMessage
from kpis.models import Alert, AlertDelivery, KpiCursor, KpiRun, KpiSnapshot
from retraining.models import BatchPair, ExportBatch, TrainingPair
from reviews.models import (
    Criterion,
    Deadline,
    ErrorCategory,
    Review,
    ReviewItem,
    Rubric,
    Score,
    SlaBreach,
    SlaDigest,
)

# Interactions happen on a fixed day unless a test says otherwise: expected values stay
# independent of when the suite runs.
DEFAULT_INTERACTION_TIME = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CORRECTED_OUTPUT = "A better answer."


def _now():
    return timezone.now()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- users and accounts ----------------------------------------------------------------------


def _add_roles(user, roles) -> None:
    for name in roles or ():
        user.groups.add(Group.objects.get_or_create(name=name)[0])


def _set_domains(user, domains) -> None:
    if domains is not None:
        ReviewerProfile.objects.update_or_create(user=user, defaults={"domains": list(domains)})


class UserFactory(factory.django.DjangoModelFactory):
    """A user; `roles=[...]` puts them in those groups, `domains=[...]` gives them a reviewer
    profile with those domains."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("pw-for-tests")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        _add_roles(self, extracted)

    @factory.post_generation
    def domains(self, create, extracted, **kwargs):
        _set_domains(self, extracted)


class ReviewerFactory(UserFactory):
    """A reviewer of the support domain (unless `roles=` / `domains=` say otherwise)."""

    username = factory.Sequence(lambda n: f"reviewer{n}")

    @factory.post_generation
    def roles(self, create, extracted, **kwargs):
        _add_roles(self, [Role.REVIEWER] if extracted is None else extracted)

    @factory.post_generation
    def domains(self, create, extracted, **kwargs):
        _set_domains(self, ["support"] if extracted is None else extracted)


class ReviewerProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReviewerProfile
        django_get_or_create = ("user",)

    user = factory.SubFactory(UserFactory, roles=[Role.REVIEWER])
    domains = factory.LazyFunction(lambda: ["support"])
    daily_capacity = 200
    active = True

    class Params:
        away = factory.Trait(active=False)


class ApiTokenFactory(factory.django.DjangoModelFactory):
    """A token whose secret is known: pass `secret="cd_..."` or read `token.secret` (kept on
    the instance only: the table holds just its sha256, as `token_create` stores it)."""

    class Meta:
        model = ApiToken

    class Params:
        revoked = factory.Trait(revoked_at=factory.LazyFunction(_now))

    user = factory.SubFactory(UserFactory, roles=[Role.AGENT])
    name = factory.Sequence(lambda n: f"token {n}")
    secret = factory.Sequence(lambda n: f"cd_test-token-{n:08d}")
    key_hash = factory.LazyAttribute(lambda t: ApiToken.hash_key(t.secret))
    prefix = factory.LazyAttribute(lambda t: t.secret[:10])

    @classmethod
    def _build(cls, model_class, *args, secret, **kwargs):
        token = super()._build(model_class, *args, **kwargs)
        token.secret = secret
        return token

    @classmethod
    def _create(cls, model_class, *args, secret, **kwargs):
        token = super()._create(model_class, *args, **kwargs)
        token.secret = secret
        return token


# --- core ------------------------------------------------------------------------------------


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    actor = factory.SubFactory(UserFactory, roles=[Role.ADMIN])
    action = "item.assigned"
    target_type = "review_item"
    target_id = factory.Sequence(lambda n: n + 1)
    before = factory.LazyFunction(dict)
    after = factory.LazyFunction(dict)


class OutboxMessageFactory(factory.django.DjangoModelFactory):
    """A message waiting to be published; `due=True` makes the sweep pick it up now."""

    class Meta:
        model = OutboxMessage
        skip_postgeneration_save = True

    class Params:
        due = factory.Trait(
            next_attempt_at=factory.LazyFunction(lambda: _now() - timedelta(minutes=1))
        )
        retried = factory.Trait(attempts=1, last_error="ConnectionError: broker unreachable")

    task = "console.tasks.items_autoassign"
    args = factory.LazyFunction(list)
    next_attempt_at = factory.LazyFunction(lambda: _now() + timedelta(seconds=30))

    @factory.post_generation
    def created_at(self, create, extracted, **kwargs):
        """`created_at=` is written after the insert (which ignores it: auto_now_add)."""
        if create and extracted is not None:
            self.created_at = extracted
            OutboxMessage.objects.filter(pk=self.pk).update(created_at=extracted)


# --- agents ----------------------------------------------------------------------------------


class AgentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Agent
        django_get_or_create = ("slug",)

    class Params:
        four_eyes = factory.Trait(required_reviews=2)

    slug = factory.Sequence(lambda n: f"agent-{n}")
    name = factory.LazyAttribute(lambda a: a.slug.replace("-", " ").title())
    kind = Agent.Kind.CHAT
    domain = "support"
    audit_rate = 0.0


class InteractionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interaction

    agent = factory.SubFactory(AgentFactory)
    external_id = factory.Sequence(lambda n: f"t-{n}")
    agent_version = "v1"
    input = "What's your return policy?"
    output = "You can return an item within 30 days."
    confidence = 0.5
    domain = "support"
    created_at = factory.LazyFunction(lambda: DEFAULT_INTERACTION_TIME)


class FeedbackEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FeedbackEvent

    interaction = factory.SubFactory(InteractionFactory)
    agent = factory.LazyAttribute(lambda f: f.interaction.agent)
    kind = FeedbackEvent.Kind.CLICKED
    item_ref = ""
    value = None
    created_at = factory.LazyAttribute(lambda f: f.interaction.created_at)
    # Unique per event made, even for two identical ones (ingest would have dropped the second).
    dedupe_key = factory.Sequence(lambda n: _sha256(f"feedback-{n}"))


# --- reviews ---------------------------------------------------------------------------------


class ErrorCategoryFactory(factory.django.DjangoModelFactory):
    """A category of the taxonomy; a slug the migrations seeded is fetched, not duplicated."""

    class Meta:
        model = ErrorCategory
        django_get_or_create = ("slug",)

    class Params:
        retired = factory.Trait(active=False)

    slug = factory.Sequence(lambda n: f"category-{n}")
    name = factory.LazyAttribute(lambda c: c.slug.replace("-", " ").capitalize())
    position = factory.Sequence(lambda n: 100 + n)


class ReviewItemFactory(factory.django.DjangoModelFactory):
    """A queued item (pending). Traits: `claimed` (a reviewer holds it under a live lease),
    `needs_second_review` / `disputed` (four-eyes items between decisions), `done` (decided:
    `final_verdict`, `decided_at`), `four_eyes` (two reviews required)."""

    class Meta:
        model = ReviewItem
        skip_postgeneration_save = True

    class Params:
        four_eyes = factory.Trait(required_reviews=2)
        claimed = factory.Trait(
            status=ReviewItem.Status.CLAIMED,
            claimed_by=factory.SubFactory(ReviewerFactory),
            lease_expires_at=factory.LazyFunction(lambda: _now() + timedelta(minutes=15)),
            version=1,
        )
        needs_second_review = factory.Trait(
            status=ReviewItem.Status.NEEDS_SECOND_REVIEW, required_reviews=2, version=2
        )
        disputed = factory.Trait(status=ReviewItem.Status.DISPUTED, required_reviews=2, version=4)
        done = factory.Trait(
            status=ReviewItem.Status.DONE,
            final_verdict=Review.Verdict.APPROVE,
            decided_at=factory.LazyFunction(_now),
            version=2,
        )

    interaction = factory.SubFactory(InteractionFactory)
    agent = factory.LazyAttribute(lambda i: i.interaction.agent)
    domain = factory.LazyAttribute(lambda i: i.interaction.domain or i.interaction.agent.domain)
    confidence = factory.LazyAttribute(lambda i: i.interaction.confidence)
    source_created_at = factory.LazyAttribute(lambda i: i.interaction.created_at)
    reason = ReviewItem.Reason.LOW_CONFIDENCE
    # As routing does: the agent's policy at the time the item was queued.
    required_reviews = factory.LazyAttribute(lambda i: i.agent.required_reviews)

    @factory.post_generation
    def created_at(self, create, extracted, **kwargs):
        """`created_at=` (when the item was queued) is written after the insert, which
        ignores values for auto_now_add fields; `updated_at` becomes the decision time, if
        any, else the queue time."""
        if create and extracted is not None:
            self.created_at, self.updated_at = extracted, self.decided_at or extracted
            ReviewItem.objects.filter(pk=self.pk).update(
                created_at=self.created_at, updated_at=self.updated_at
            )


class ReviewFactory(factory.django.DjangoModelFactory):
    """One reviewer's verdict. A correction gets a corrected output (the database requires
    one). Traits name the verdicts: `corrected`, `rejected`, `escalated`, `skipped`;
    `adjudication` is an admin's final word on a dispute."""

    class Meta:
        model = Review
        skip_postgeneration_save = True

    class Params:
        corrected = factory.Trait(verdict=Review.Verdict.CORRECT)
        rejected = factory.Trait(verdict=Review.Verdict.REJECT)
        escalated = factory.Trait(verdict=Review.Verdict.ESCALATE)
        skipped = factory.Trait(verdict=Review.Verdict.SKIP)
        adjudication = factory.Trait(
            is_adjudication=True, reviewer=factory.SubFactory(UserFactory, roles=[Role.ADMIN])
        )

    item = factory.SubFactory(ReviewItemFactory)
    reviewer = factory.SubFactory(ReviewerFactory)
    verdict = Review.Verdict.APPROVE
    corrected_output = factory.LazyAttribute(
        lambda r: CORRECTED_OUTPUT if r.verdict == Review.Verdict.CORRECT else ""
    )

    @factory.post_generation
    def created_at(self, create, extracted, **kwargs):
        """`created_at=` is written after the insert (which ignores it: auto_now_add)."""
        if create and extracted is not None:
            self.created_at = extracted
            Review.objects.filter(pk=self.pk).update(created_at=extracted)


class RubricFactory(factory.django.DjangoModelFactory):
    """A rubric version of an agent (without criteria: add CriterionFactory rows; the
    service, `reviews.rubrics.rubric_create`, numbers versions and checks the criteria)."""

    class Meta:
        model = Rubric

    agent = factory.SubFactory(AgentFactory)
    version = factory.Sequence(lambda n: n + 1)


class CriterionFactory(factory.django.DjangoModelFactory):
    """A criterion of a rubric version. Trait: `scale` (1–5; default pass / fail)."""

    class Meta:
        model = Criterion

    class Params:
        scale = factory.Trait(kind=Criterion.Kind.SCALE)

    rubric = factory.SubFactory(RubricFactory)
    key = factory.Sequence(lambda n: f"criterion-{n}")
    name = factory.LazyAttribute(lambda c: c.key.replace("-", " ").capitalize())
    kind = Criterion.Kind.PASS_FAIL


class ScoreFactory(factory.django.DjangoModelFactory):
    """A pass (1) of a pass / fail criterion in a review."""

    class Meta:
        model = Score

    review = factory.SubFactory(ReviewFactory)
    criterion = factory.SubFactory(CriterionFactory)
    value = 1


# --- retraining ------------------------------------------------------------------------------


class TrainingPairFactory(factory.django.DjangoModelFactory):
    """The pair a decided item made (an approval unless `corrected=True`), copied from its
    interaction as `retraining.receivers` does, with its content hash. `reviews=[...]` links
    those reviews and their reviewers."""

    class Meta:
        model = TrainingPair
        skip_postgeneration_save = True

    class Params:
        corrected = factory.Trait(
            source=TrainingPair.Source.CORRECT,
            output=CORRECTED_OUTPUT,
            rejected_output=factory.LazyAttribute(lambda p: p.interaction.output),
        )

    source = TrainingPair.Source.APPROVE
    item = factory.SubFactory(
        ReviewItemFactory, done=True, final_verdict=factory.SelfAttribute("..source")
    )
    interaction = factory.LazyAttribute(lambda p: p.item.interaction)
    agent = factory.LazyAttribute(lambda p: p.item.agent)
    agent_version = factory.LazyAttribute(lambda p: p.interaction.agent_version)
    input = factory.LazyAttribute(lambda p: p.interaction.input)
    context = factory.LazyAttribute(lambda p: p.interaction.context)
    steps = factory.LazyAttribute(lambda p: p.interaction.steps)
    output = factory.LazyAttribute(lambda p: p.interaction.output)
    rejected_output = ""
    content_hash = factory.LazyAttribute(lambda p: _sha256(f"{p.input}\x1f{p.output}"))

    @factory.post_generation
    def reviews(self, create, extracted, **kwargs):
        if create and extracted:
            self.reviews.set(extracted)
            self.reviewers.set({r.reviewer_id for r in extracted})


class ExportBatchFactory(factory.django.DjangoModelFactory):
    """A requested batch (queued). Traits: `building` (a builder holds the lease), `ready`
    (file, checksum, counts: the database requires file and sha256), `failed`; `feedback`
    asks for the feedback log as CSV."""

    class Meta:
        model = ExportBatch

    class Params:
        feedback = factory.Trait(
            dataset=ExportBatch.Dataset.FEEDBACK, format=ExportBatch.Format.CSV
        )
        building = factory.Trait(
            status=ExportBatch.Status.BUILDING,
            attempts=1,
            progress=40,
            lease_token=factory.Sequence(lambda n: f"{n:032x}"),
            started_at=factory.LazyFunction(_now),
            heartbeat_at=factory.LazyFunction(_now),
        )
        ready = factory.Trait(
            status=ExportBatch.Status.READY,
            attempts=1,
            progress=100,
            row_count=1,
            counts=factory.LazyFunction(lambda: {"train": 1, "validation": 0}),
            file=factory.Sequence(lambda n: f"exports/batch-{n}.jsonl"),
            file_size=100,
            sha256=factory.Sequence(lambda n: _sha256(f"batch-{n}")),
            started_at=factory.LazyFunction(_now),
            finished_at=factory.LazyFunction(_now),
        )
        failed = factory.Trait(
            status=ExportBatch.Status.FAILED,
            attempts=1,
            failure_reason="the build failed",
            started_at=factory.LazyFunction(_now),
            finished_at=factory.LazyFunction(_now),
        )

    agent = factory.SubFactory(AgentFactory)
    dataset = ExportBatch.Dataset.PAIRS
    format = ExportBatch.Format.JSONL
    created_by = factory.SubFactory(UserFactory, roles=[Role.ML])


class BatchPairFactory(factory.django.DjangoModelFactory):
    """A pair held by a batch (of the batch's agent)."""

    class Meta:
        model = BatchPair

    batch = factory.SubFactory(ExportBatchFactory)
    pair = factory.SubFactory(
        TrainingPairFactory, item__interaction__agent=factory.SelfAttribute("....batch.agent")
    )
    duplicate = False


# --- kpis ------------------------------------------------------------------------------------


class KpiSnapshotFactory(factory.django.DjangoModelFactory):
    """A day's sufficient statistics; `agent_version=""` is the row over all versions."""

    class Meta:
        model = KpiSnapshot

    agent = factory.SubFactory(AgentFactory)
    agent_version = ""
    date = factory.LazyFunction(lambda: DEFAULT_INTERACTION_TIME.date())
    stats = factory.LazyFunction(dict)


class KpiCursorFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = KpiCursor
        django_get_or_create = ("source",)

    source = factory.Sequence(lambda n: f"source-{n}")
    last_id = 0
    history = factory.LazyFunction(list)


class KpiRunFactory(factory.django.DjangoModelFactory):
    """A requested recompute (queued). Traits: `running` (started, one step of four done),
    `done`, `failed`."""

    class Meta:
        model = KpiRun

    class Params:
        running = factory.Trait(
            state=KpiRun.State.RUNNING,
            started_at=factory.LazyFunction(_now),
            total_steps=4,
            done_steps=1,
        )
        done = factory.Trait(
            state=KpiRun.State.DONE,
            started_at=factory.LazyFunction(_now),
            finished_at=factory.LazyFunction(_now),
            total_steps=4,
            done_steps=4,
        )
        failed = factory.Trait(
            state=KpiRun.State.FAILED,
            started_at=factory.LazyFunction(_now),
            finished_at=factory.LazyFunction(_now),
            error="the recompute failed",
        )

    trigger = KpiRun.Trigger.BUTTON
    mode = KpiRun.Mode.INCREMENTAL


class AlertFactory(factory.django.DjangoModelFactory):
    """An open alert (at most one per agent and KPI); `resolved=True` closes it."""

    class Meta:
        model = Alert

    class Params:
        resolved = factory.Trait(resolved_at=factory.LazyFunction(_now), resolved_value=0.9)

    agent = factory.SubFactory(AgentFactory)
    kpi = "resolution_rate"
    threshold = factory.LazyFunction(lambda: {"below": 0.7, "days": 7, "min_n": 50})
    value = 0.5
    n = 60


class AlertDeliveryFactory(factory.django.DjangoModelFactory):
    """A webhook POST waiting to be sent. Traits: `delivered`, `failed` (out of attempts)."""

    class Meta:
        model = AlertDelivery

    class Params:
        delivered = factory.Trait(
            state=AlertDelivery.State.DELIVERED,
            attempts=1,
            last_status=200,
            next_attempt_at=None,
            delivered_at=factory.LazyFunction(_now),
        )
        failed = factory.Trait(
            state=AlertDelivery.State.FAILED,
            attempts=5,
            last_status=500,
            last_error="HTTP 500",
            next_attempt_at=None,
        )

    alert = factory.SubFactory(AlertFactory)
    event = AlertDelivery.Event.RAISED
    url = "https://hooks.example.com/coachdesk"
    payload = factory.LazyAttribute(lambda d: {"event": d.event, "kpi": d.alert.kpi})
    next_attempt_at = factory.LazyFunction(_now)


# --- issue 16: single sign-on, redaction, deadlines ---------------------------------------------


class IdentityFactory(factory.django.DjangoModelFactory):
    """A user's account at an OpenID Connect provider."""

    class Meta:
        model = Identity

    user = factory.SubFactory(UserFactory)
    issuer = "https://id.example.com"
    subject = factory.Sequence(lambda n: f"sub-{n}")


class RedactedValueFactory(factory.django.DjangoModelFactory):
    """A placeholder's mapping in a conversation, the original kept (`original=None`: not)."""

    class Meta:
        model = RedactedValue

    agent = factory.SubFactory(AgentFactory)
    conversation_key = factory.Sequence(lambda n: f"c:conv-{n}")
    kind = "email"
    number = 1
    digest = factory.Sequence(lambda n: hashlib.sha256(f"value-{n}".encode()).hexdigest())
    original = factory.Sequence(lambda n: f"person{n}@example.com")


class DeadlineFactory(factory.django.DjangoModelFactory):
    """An agent's review deadline: 4 working hours."""

    class Meta:
        model = Deadline

    agent = factory.SubFactory(AgentFactory)
    domain = ""
    hours = 4.0
    working_hours = True


class SlaBreachFactory(factory.django.DjangoModelFactory):
    """A missed deadline of an item."""

    class Meta:
        model = SlaBreach

    item = factory.SubFactory(ReviewItemFactory)
    agent = factory.SelfAttribute("item.agent")
    domain = factory.SelfAttribute("item.domain")
    due_at = factory.LazyFunction(lambda: _now() - timedelta(hours=1))
    breached_at = factory.LazyFunction(_now)


class SlaDigestFactory(factory.django.DjangoModelFactory):
    """A lead's daily digest, sent."""

    class Meta:
        model = SlaDigest

    user = factory.SubFactory(UserFactory)
    day = factory.LazyFunction(lambda: _now().date())
    sent_at = factory.LazyFunction(_now)
