"""`manage.py restore_data --input PATH`: loads an archive written by backup_data into a
migrated, empty database, all or nothing. See backup/archive.py."""

import shutil
import tempfile
from pathlib import Path

from django.core.files.storage import default_storage
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
        parser.add_argument(
            "--from-storage",
            action="store_true",
            help="INPUT is the name of an archive in the file storage (backups/NAME)",
        )

    def handle(self, *args, archive: Path, from_storage: bool, **options) -> None:
        if not from_storage:
            self._restore(archive)
            return
        stored = str(archive) if str(archive).startswith("backups/") else f"backups/{archive}"
        if not default_storage.exists(stored):
            raise CommandError(f"restore failed, nothing was restored: no {stored} in storage")
        with tempfile.TemporaryDirectory(prefix="coachdesk-restore-") as tmp:
            local = Path(tmp) / Path(stored).name
            with default_storage.open(stored, "rb") as source, open(local, "wb") as sink:
                shutil.copyfileobj(source, sink, 1024 * 1024)
            self._restore(local)

    def _restore(self, archive: Path) -> None:
        try:
            result = backup_restore(archive=archive)
        except BackupError as exc:
            raise CommandError(f"restore failed, nothing was restored: {exc}") from exc
        self.stdout.write(result.summary("restored from"))
