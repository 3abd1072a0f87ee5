"""The embedded stand-in for `celery beat` (used by `make run` when there is no Redis).

Runs every task of CELERY_BEAT_SCHEDULE in this process, each at its interval, through
Celery's own eager execution, so the tasks are exactly the ones a real beat would send.
"""

import time

from celery import current_app as app
from django.conf import settings
from django.core.management.base import BaseCommand


def _seconds(schedule) -> float:
    """A beat schedule entry's interval: a number of seconds or a timedelta."""
    return float(schedule.total_seconds() if hasattr(schedule, "total_seconds") else schedule)


class Command(BaseCommand):
    help = "Runs the periodic tasks of CELERY_BEAT_SCHEDULE in-process (embedded mode)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run every task once and exit")

    def handle(self, *args, once: bool, **options) -> None:
        app.loader.import_default_modules()  # registers the tasks of every app
        schedule = {
            name: (entry["task"], _seconds(entry["schedule"]))
            for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        }
        due = dict.fromkeys(schedule, 0.0)
        while True:
            now = time.monotonic()
            for name, (task, every) in schedule.items():
                if now >= due[name]:
                    due[name] = now + every
                    try:
                        app.tasks[task].apply(throw=True)
                    except Exception as exc:  # keep the loop alive; the next run retries
                        self.stderr.write(f"{name}: {type(exc).__name__}: {exc}")
            if once:
                return
            time.sleep(max(0.5, min(due.values()) - time.monotonic()))
