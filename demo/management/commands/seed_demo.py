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
        "Loads the demo: three agents with their review policies, a month of interactions and "
        "feedback (through the ingest path, so they are routed to review), and the demo users "
        f"(password {demo.DEMO_PASSWORD!r}). Safe to run twice."
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
        logins = ", ".join(spec.describe() for spec, _ in result.users if not spec.service)
        write(f"Logins (password {demo.DEMO_PASSWORD}): {logins}")
        write(
            "Service account: pipeline (agent; API only: "
            "manage.py createtoken pipeline prints a token)"
        )
        write(self.style.SUCCESS(f"Demo ready in {seconds:.1f} s."))
