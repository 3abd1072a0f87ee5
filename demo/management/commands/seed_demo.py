import time
from argparse import ArgumentTypeError

from django.core.management.base import BaseCommand, CommandError

from demo import seed as demo


def _count(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


class Command(BaseCommand):
    help = (
        "Loads the demo: three agents with their review policies, the demo users (password "
        f"{demo.DEMO_PASSWORD!r}), a month of interactions and feedback (through the ingest "
        "path, so they are routed to review) and, in a fresh demo, the weeks of reviews, "
        "adjudications, training pairs and export batches that followed, with KPIs computed. "
        "Needs no worker. Safe to run twice."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--interactions",
            type=_count,
            default=demo.DEFAULT_INTERACTIONS,
            metavar="N",
            help=f"interactions to generate (default {demo.DEFAULT_INTERACTIONS})",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=demo.DEFAULT_SEED,
            help="random seed; the same seed gives the same demo (default %(default)s)",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when the database already holds interactions (used by `make run`)",
        )

    def handle(self, *args, interactions: int, seed: int, if_empty: bool, **options) -> None:
        if if_empty and not demo.demo_needed():
            self.stdout.write("seed_demo: the database already has interactions; not seeding.")
            return
        started = time.monotonic()
        try:
            result = demo.demo_seed(interactions=interactions, seed=seed)
        except demo.DemoDataError as exc:
            raise CommandError(str(exc)) from exc
        self._summary(result, time.monotonic() - started)

    def _summary(self, result: demo.DemoResult, seconds: float) -> None:
        write = self.stdout.write
        write(
            "Agents: "
            + "; ".join(
                f"{a.slug} ({a.kind}, {a.domain}, threshold {a.confidence_threshold:g}"
                + (", four-eyes" if a.required_reviews == 2 else "")
                + ")"
                for a in result.agents
            )
        )
        span = f" from {result.first_day} to {result.last_day}" if result.first_day else ""
        write(f"Interactions: {result.interactions.summary()}{span}")
        routed = result.interactions.routed + result.feedback.routed
        reasons = ", ".join(f"{reason} {n}" for reason, n in result.queue_by_reason.items())
        write(f"Review items: {routed} routed now; demo queue total: {reasons or 'none'}")
        kinds = ", ".join(f"{kind} {n}" for kind, n in result.feedback_by_kind.items())
        write(f"Feedback: {result.feedback.summary()} ({kinds or 'none'})")
        self._history(result)
        logins = ", ".join(spec.describe() for spec, _ in result.users if not spec.service)
        write(f"Logins (password {demo.DEMO_PASSWORD}): {logins}")
        write(
            "Service account: pipeline (agent; API only: "
            "manage.py createtoken pipeline prints a token)"
        )
        write(self.style.SUCCESS(f"Demo ready in {seconds:.1f} s."))

    def _history(self, result: demo.DemoResult) -> None:
        write, h = self.stdout.write, result.history
        verdicts = ", ".join(f"{v} {n}" for v, n in h.verdicts.items()) or "none"
        lead = "replayed now" if result.replayed else "kept as it was"
        write(
            f"Review history ({lead}): {h.reviews} reviews by {h.reviewers} reviewers; "
            f"decided items: {verdicts}"
        )
        write(
            f"Four-eyes: {h.four_eyes_done} item{'' if h.four_eyes_done == 1 else 's'} "
            "decided by two agreeing reviewers, "
            f"{h.adjudicated} adjudicated by a lead, {h.disputed} waiting for one"
        )
        waiting = ", ".join(f"{d} {n}" for d, n in h.open_by_domain.items()) or "none"
        write(f"Open for review: {waiting}")
        batches = "; ".join(
            f"#{b.pk} {b.agent.slug} {b.format} {b.status}, {b.row_count} rows"
            + (f", trained {b.trained_agent_version}" if b.trained_agent_version else "")
            for b in h.batches
        )
        write(f"Training pairs: {h.pairs}; export batches: {batches or 'none'}")
        compared = ", ".join(f"{s} {n}" for s, n in h.comparisons.items()) or "none"
        write(f"Rubric scores on {h.scored_reviews} reviews; pairwise comparisons: {compared}")
        for sentence in h.regression:
            write(f"Regression run: {sentence}")
        redacted = ", ".join(f"{kind} {n}" for kind, n in h.redacted.items()) or "none"
        write(f"Personal data redacted at ingest (support-bot's policy): {redacted}")
        due = f"{h.due_open} open, {h.overdue} overdue"
        write(f"Review deadlines (legal-bot, 4 working hours): {due}")
        run = h.kpi_run
        computed = f" ({run.days} agent-days recomputed now)" if run else ""
        write(f"KPI snapshots: {h.kpi_rows}{computed}")
