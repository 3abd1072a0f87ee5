"""Sends the task messages the outbox kept while the broker was down (what beat runs)."""

from django.core.management.base import BaseCommand

from core.outbox import outbox_backlog, outbox_sweep


class Command(BaseCommand):
    help = "Publishes the outbox messages kept while Redis was unreachable."

    def handle(self, *args, **options) -> None:
        result = outbox_sweep()
        left = outbox_backlog()["pending"]
        self.stdout.write(f"sent {result['sent']}, kept {result['kept']}, pending {left}")
        if result["kept"]:
            self.stderr.write("The broker is still unreachable; run again once it answers.")
