"""The demo's weeks, replayed through the real services: the traffic arrives day by day
through the ingest path, and on working days the demo reviewers work the queue as it stood
that morning (`reviews.services.item_claim` / `review_submit`), the lead adjudicates
(`item_adjudicate`), and the ML engineer builds retraining batches (`retraining.services`).
Training pairs follow from the decisions (the retraining receiver). At the end the KPIs are
recomputed once (`kpis.services`), so every page has data on the first run.

Order within a day: reviews, then the lead's adjudications and the batches, then that day's
interactions and feedback, so nobody decides an item before it arrived. The last
`REVIEW_LAG_DAYS` have traffic but no reviews: the backlog the demo reviewers find.

Nothing here needs Celery: batches are built and KPIs recomputed in this process, inside the
caller's transaction. The services stamp rows with the real time; `demo.backdate` moves the
stamps to the simulated moments afterwards (time columns only, never a status).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count

from agents.models import Agent, Interaction
from demo import loop, reviewing
from demo.backdate import HistoryClock
from demo.plan import RELEASES, DemoPlan, PlannedFeedback, iso_utc, release_names
from ingest.batches import IngestResult
from ingest.services import feedback_ingest, interactions_ingest
from kpis import services as kpi_services
from kpis.models import KpiRun
from retraining import services as retraining
from retraining.models import ExportBatch
from reviews import services as review_services
from reviews.models import ReviewItem

SOURCE = "demo"
ML_USER = "mia"
# The batches mia builds: (days before today, agent, format), after that day's reviews. The
# first one trained the agent's next release (marked on the day that release went out).
BATCHES = ((10, "support-bot", "jsonl"), (reviewing.REVIEW_LAG_DAYS, "legal-bot", "preference"))
ADJUDICATION_DAYS = (1, 3)  # the lead settles disputes on Tuesdays and Thursdays
LEAD_AWAY_DAYS = 5  # ... but not in the last days: the first run has disputes waiting


@dataclass
class Replay:
    interactions: IngestResult = field(default_factory=IngestResult)
    feedback: IngestResult = field(default_factory=IngestResult)
    reviewed: bool = False  # the history was replayed (a fresh demo), not only ingested
    batches: list[ExportBatch] = field(default_factory=list)
    kpi_run: KpiRun | None = None
    loop_result: loop.LoopResult | None = None


def _add(total: IngestResult, part: IngestResult) -> None:
    total.created += part.created
    total.duplicates += part.duplicates
    total.rejected += part.rejected
    total.routed += part.routed
    total.errors.extend(part.errors)


def _decision(
    item: ReviewItem, planned: reviewing.PlannedReview, scores: dict[str, int] | None = None
) -> Any:
    """A planned review (`demo.reviewing`) as the review services take it, with the
    rubric's `scores` when its agent has one."""
    return review_services.decision_validate(
        item=item,
        verdict=planned.verdict,
        corrected_output=planned.corrected_output,
        error_category=planned.error_category or None,
        notes=planned.notes,
        seconds_spent=planned.seconds_spent,
        scores=scores,
    )


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _feedback_records(
    events: list[PlannedFeedback], agents: dict[str, Agent]
) -> Iterator[dict[str, Any]]:
    """Feedback lines timed from the *stored* interactions: a second run sends the same
    `created_at`, hence the same dedupe keys (`FeedbackEvent.make_dedupe_key`)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        wanted[event.agent].add(event.external_id)
    stored: dict[tuple[str, str], datetime] = {}
    for slug, external_ids in wanted.items():
        ids = sorted(external_ids)
        for start in range(0, len(ids), 2000):  # stay under SQLite's variable limit
            rows = Interaction.objects.filter(
                agent=agents[slug], external_id__in=ids[start : start + 2000]
            ).values_list("external_id", "created_at")
            stored.update(((slug, external_id), at) for external_id, at in rows)
    for event in events:
        at = stored[(event.agent, event.external_id)]
        line: dict[str, Any] = {
            "agent": event.agent,
            "external_id": event.external_id,
            "kind": str(event.kind),
            "created_at": iso_utc(at + timedelta(seconds=event.delay_s)),
        }
        if event.item_ref:
            line["item_ref"] = event.item_ref
        yield line


class _History:
    """One replay: the clock of the simulated weeks and what each day did."""

    def __init__(
        self, *, plan: DemoPlan, agents: dict[str, Agent], seed: int, now: datetime
    ) -> None:
        self.plan, self.agents, self.seed, self.now = plan, agents, seed, now
        self.today = now.astimezone(UTC).date()
        names = [p.username for p in reviewing.PERSONAS] + [reviewing.LEAD, ML_USER]
        users = get_user_model().objects.filter(username__in=names)
        self.users = {u.username: u for u in users.select_related("reviewer_profile")}
        self.clock = HistoryClock()
        self.last: dict[int, datetime] = {}  # item → the moment of its last review
        self.texts: dict[int, Interaction] = {}
        self.result = Replay()
        self.scored: set[int] = set()  # agents with a rubric: their reviews carry scores

    def _scores(self, item: ReviewItem, planned: reviewing.PlannedReview, external_id: str):
        if item.agent_id not in self.scored:
            return None
        return loop.scores_for(planned.verdict, seed=self.seed, external_id=external_id)

    # --- arrivals --------------------------------------------------------------------------

    def arrive(self, day: date, indexes: list[int], feedback: list[PlannedFeedback]) -> None:
        records = ((i, self.plan.interactions[i]) for i in indexes)
        _add(self.result.interactions, interactions_ingest(records=records, source=SOURCE))
        lines = enumerate(_feedback_records(feedback, self.agents))
        _add(self.result.feedback, feedback_ingest(records=lines, source=SOURCE))
        self.clock.at(min(self.now, _day_start(day) + timedelta(days=1, seconds=-1)))

    # --- reviews ---------------------------------------------------------------------------

    def _open_reviews(self) -> dict[str, int]:
        """Reviews still needed per domain: a pending item needs all of its reviews, one
        waiting for its second review one more."""
        rows = (
            ReviewItem.objects.filter(
                agent__in=self.agents.values(), status__in=ReviewItem.OPEN_STATUSES
            )
            .values_list("domain", "status", "required_reviews")
            .annotate(n=Count("pk"))
            .order_by()
        )
        needed: dict[str, int] = defaultdict(int)
        for domain, status, required, n in rows:
            needed[domain] += n * (required if status == ReviewItem.Status.PENDING else 1)
        return needed

    def work(self, day: date) -> None:
        """The day's sessions, interleaved by their clocks, until each domain has worked off
        its share of the open reviews (`reviewing.WORK_SHARE`) or the day ends."""
        share = reviewing.WORK_SHARE[day.weekday()]
        sessions = [
            s
            for p in reviewing.PERSONAS
            if p.username in self.users and (s := reviewing.session_of(p, seed=self.seed, day=day))
        ]
        if not share or not sessions:
            return
        budget = {d: math.ceil(share * n) for d, n in self._open_reviews().items()}
        # The texts the reviewers read, in one query rather than one per claim.
        self.texts = {
            i.pk: i
            for i in Interaction.objects.filter(
                review_item__status__in=ReviewItem.OPEN_STATUSES, agent__in=self.agents.values()
            ).only("external_id", "intent", "output")
        }
        # Nobody takes the whole day's work because they started first: each reviewer does
        # about their part of their domains' work (a little more, covering for the slower).
        staff = Counter(d for s in sessions for d in s.persona.domains)
        quota = [
            math.ceil(1.25 * sum(budget.get(d, 0) / staff[d] for d in s.persona.domains))
            for s in sessions
        ]
        ready = [(s.clock, k) for k, s in enumerate(sessions)]
        heapq.heapify(ready)
        while ready:
            _, k = heapq.heappop(ready)
            session = sessions[k]
            domains = [d for d in session.persona.domains if budget.get(d, 0) > 0]
            if not domains or quota[k] <= 0:
                continue
            only = None if len(domains) == len(session.persona.domains) else domains[0]
            user = self.users[session.persona.username]
            item = review_services.item_claim(reviewer=user, domain=only)
            if item is None:
                continue  # nothing left for them today
            self._review(session, user, item)
            budget[item.domain] -= 1
            quota[k] -= 1
            session.pause()
            if not session.over:
                heapq.heappush(ready, (session.clock, k))

    def _review(self, session: reviewing.Session, user: Any, item: ReviewItem) -> None:
        if item.interaction_id in self.texts:
            item.interaction = self.texts[item.interaction_id]
        interaction = item.interaction
        planned = reviewing.review_of(
            session.persona,
            seed=self.seed,
            external_id=interaction.external_id,
            intent=interaction.intent or "",
            domain=item.domain,
            output=interaction.output,
            fix=self.plan.fixes.get(interaction.external_id),
        )
        decision = _decision(item, planned, self._scores(item, planned, interaction.external_id))
        outcome = review_services.review_submit(item=item, reviewer=user, decision=decision)
        claimed = session.clock
        if item.pk in self.last:  # a second review comes after the first
            claimed = max(claimed, self.last[item.pk] + timedelta(minutes=1))
        moment = claimed + timedelta(seconds=planned.seconds_spent)
        session.clock = self.last[item.pk] = moment
        self.clock.decision(outcome, moment, claimed=claimed)

    def adjudicate(self, day: date) -> None:
        """The lead decides the items disputed or escalated two days ago or earlier (the
        newer ones wait for the next round: the first run has some to adjudicate)."""
        lead = self.users.get(reviewing.LEAD)
        away = self.today - timedelta(days=LEAD_AWAY_DAYS)
        if lead is None or day.weekday() not in ADJUDICATION_DAYS or day > away:
            return
        moment = _day_start(day) + timedelta(hours=16, minutes=30)
        disputed = ReviewItem.objects.filter(
            agent__in=self.agents.values(), status=ReviewItem.Status.DISPUTED
        ).select_related("interaction")
        for item in disputed.order_by("pk"):
            if self.last.get(item.pk, moment) >= _day_start(day) - timedelta(days=1):
                continue  # too recent (or from before the replay): a later round
            interaction = item.interaction
            planned = reviewing.adjudication_of(
                seed=self.seed,
                external_id=interaction.external_id,
                intent=interaction.intent or "",
                fix=self.plan.fixes.get(interaction.external_id),
            )
            decision = _decision(
                item, planned, self._scores(item, planned, interaction.external_id)
            )
            outcome = review_services.item_adjudicate(item=item, admin=lead, decision=decision)
            moment += timedelta(seconds=planned.seconds_spent)
            self.last[item.pk] = moment
            self.clock.decision(outcome, moment)

    # --- retraining ------------------------------------------------------------------------

    def build(self, day: date) -> None:
        """mia's batches of the day, built here and now (no worker), and the "used to train"
        mark of the first batch on the day its agent's next release went out."""
        mia = self.users.get(ML_USER)
        if mia is None:
            return
        moment = _day_start(day) + timedelta(hours=18, minutes=15)
        for days_ago, slug, fmt in BATCHES:
            if day == self.today - timedelta(days=days_ago) and slug in self.agents:
                self._batch(mia, self.agents[slug], fmt, moment)
        if not self.result.batches:
            return
        first, (days_ago, slug, _) = self.result.batches[0], BATCHES[0]
        later = [k for k, r in enumerate(RELEASES[slug]) if r.days_ago < days_ago]
        if later and first.agent.slug == slug and first.status == ExportBatch.Status.READY:
            release = RELEASES[slug][later[0]]
            if day == self.today - timedelta(days=release.days_ago):
                version = release_names(self.today)[slug][later[0]]
                retraining.batch_mark_trained(batch=first, agent_version=version, actor=mia)
                self.clock.at(_day_start(day) + timedelta(hours=9, minutes=5))

    def _batch(self, mia: Any, agent: Agent, fmt: str, moment: datetime) -> None:
        try:
            batch = retraining.batch_request(
                agent=agent, format=fmt, actor=mia, enqueue=False, refuse_empty=True
            )
        except retraining.InvalidRequest:
            return  # nothing to export yet (a tiny demo): no batch rather than an empty one
        self.clock.batch_requested(batch, moment)
        retraining.batch_build(batch_id=batch.pk)
        batch.refresh_from_db()
        self.clock.batch_built(batch, moment, seconds=4 + batch.row_count / 200)
        self.result.batches.append(batch)

    # --- the whole replay ------------------------------------------------------------------

    def run(self, *, reviews: bool) -> Replay:
        by_day: dict[date, list[int]] = defaultdict(list)
        for i, record in enumerate(self.plan.interactions):
            by_day[datetime.fromisoformat(record["created_at"]).date()].append(i)
        feedback: dict[str, list[PlannedFeedback]] = defaultdict(list)
        for event in self.plan.feedback:
            feedback[event.external_id].append(event)
        first = min(by_day, default=self.today)
        working = set(reviewing.review_days(first, self.today)) if reviews else set()
        self.result.reviewed = bool(working)
        if working:
            self.scored = loop.rubrics_ensure(
                self.agents.values(), actor=self.users.get(reviewing.LEAD)
            )
        for k in range((self.today - first).days + 1):
            day = first + timedelta(days=k)
            if day in working:
                self.work(day)
                self.adjudicate(day)
                self.build(day)
            if day in by_day:
                ids = [self.plan.interactions[i]["external_id"] for i in by_day[day]]
                self.arrive(day, by_day[day], [e for x in ids for e in feedback[x]])
        self.clock.apply()
        if working:
            self.result.loop_result = loop.loop_replay(
                agents=self.agents.values(), seed=self.seed, now=self.now
            )
        if self.result.interactions.created or self.result.reviewed:
            run, _ = kpi_services.run_request(
                trigger=KpiRun.Trigger.COMMAND, full=True, enqueue=False
            )
            self.result.kpi_run = kpi_services.run_execute(run_id=run.pk)
        return self.result


def history_replay(
    *, plan: DemoPlan, agents: Iterable[Agent], seed: int, now: datetime, reviews: bool
) -> Replay:
    """Ingests `plan` day by day and, with `reviews`, replays the reviews, adjudications and
    batches of those days (see the module docstring); recomputes the KPIs when anything
    changed. In the caller's transaction. Raises what the services raise."""
    history = _History(plan=plan, agents={a.slug: a for a in agents}, seed=seed, now=now)
    return history.run(reviews=reviews)
