import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.models import Agent
from kpis import services
from kpis.models import KpiRun


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        from argparse import ArgumentTypeError

        raise ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = (
        "Recomputes KPI snapshots. With no options: the days touched since the last run (as the "
        "periodic task does; everything on the first run). --agent and --since recompute every "
        "day from SINCE (default: the agent's first day) to today; --full recomputes every day "
        "of every agent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--agent", metavar="SLUG", help="only this agent")
        parser.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="first day")
        parser.add_argument(
            "--full", action="store_true", help="every day of every agent (moves the cursors)"
        )

    def handle(self, *args, agent: str | None, since: date | None, full: bool, **options):
        target = None
        if agent:
            target = Agent.objects.filter(slug=agent).first()
            if target is None:
                raise CommandError(f"unknown agent {agent!r}")
        if since and since > date.today():
            raise CommandError(f"--since {since} is in the future")
        started = time.monotonic()
        run, _ = services.run_request(
            trigger=KpiRun.Trigger.COMMAND, agent=target, since=since, full=full, enqueue=False
        )
        try:
            run = services.run_execute(run_id=run.pk)
        except Exception as exc:
            raise CommandError(f"recompute failed: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(
            f"recomputed {run.days} agent-days ({run.rows} rows) in "
            f"{time.monotonic() - started:.2f} s; "
            f"alerts raised {run.alerts_raised}, resolved {run.alerts_resolved}"
        )
