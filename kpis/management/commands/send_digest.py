from django.core.management.base import BaseCommand, CommandParser

from kpis import sla


class Command(BaseCommand):
    help = (
        "Sends today's review-deadline digest (SLA time zone) to each lead who has not had it "
        "today, whatever the hour (the periodic task waits for SLA_DIGEST_HOUR). Once per lead "
        "and day: running it again sends nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--wait-for-hour",
            action="store_true",
            help="send only once SLA_DIGEST_HOUR has come, as the periodic task does",
        )

    def handle(self, *args, wait_for_hour: bool, **options):
        sent = sla.digests_send(force=not wait_for_hour)
        self.stdout.write(f"digests sent: {sent}")
