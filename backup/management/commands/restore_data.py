"""`manage.py restore_data --input PATH`: loads an archive written by backup_data into a
migrated, empty database, all or nothing. See backup/archive.py."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backup.archive import BackupError
from backup.restore import backup_restore


class Command(BaseCommand):
    help = (
        "Restores a backup_data archive into a freshly migrated database that holds no data "
        "yet (it refuses one that does). Checks the manifest, the migration state and every "
        "member's sha256 before writing anything, then restores everything in one "
        "transaction (all or nothing) and writes the batch files back to storage."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--input", dest="archive", required=True, type=Path, help="archive to restore"
        )

    def handle(self, *args, archive: Path, **options) -> None:
        try:
            result = backup_restore(archive=archive)
        except BackupError as exc:
            raise CommandError(f"restore failed, nothing was restored: {exc}") from exc
        self.stdout.write(result.summary("restored from"))
