"""`manage.py backup_data --output PATH`: one archive of the decisions, training pairs and
export batches (and everything they reference) with the batch files. See backup/archive.py."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backup.archive import READ_CHUNK_ROWS, BackupError
from backup.write import backup_write


class Command(BaseCommand):
    help = (
        "Writes a backup archive (.tar.gz): a manifest, every table of the decisions, pairs "
        "and batches as JSON Lines, and the batch files. Reads one consistent snapshot while "
        "the app keeps running. Prints a one-line summary."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--output", required=True, type=Path, help="archive to write (must not exist)"
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=READ_CHUNK_ROWS,
            help="rows read per query (default %(default)s)",
        )

    def handle(self, *args, output: Path, chunk_size: int, **options) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size must be 1 or more")
        try:
            result = backup_write(output=output, chunk_size=chunk_size)
        except BackupError as exc:
            raise CommandError(f"backup failed: {exc}") from exc
        self.stdout.write(result.summary("backed up to"))
