"""`manage.py backup_data --output PATH`: one archive of the decisions, training pairs and
export batches (and everything they reference) with the batch files. See backup/archive.py.
With `--to-storage` the archive goes to the file storage (object storage on several
machines) under `backups/`, written locally first and uploaded once complete."""

import tempfile
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage
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
        parser.add_argument(
            "--to-storage",
            action="store_true",
            help="upload the archive to the file storage as backups/OUTPUT (OUTPUT is a name)",
        )

    def handle(self, *args, output: Path, chunk_size: int, to_storage: bool, **options) -> None:
        if chunk_size < 1:
            raise CommandError("--chunk-size must be 1 or more")
        if to_storage:
            self._to_storage(output.name, chunk_size)
            return
        try:
            result = backup_write(output=output, chunk_size=chunk_size)
        except BackupError as exc:
            raise CommandError(f"backup failed: {exc}") from exc
        self.stdout.write(result.summary("backed up to"))

    def _to_storage(self, name: str, chunk_size: int) -> None:
        stored = f"backups/{name}"
        if default_storage.exists(stored):
            raise CommandError(f"backup failed: the storage already holds {stored}")
        with tempfile.TemporaryDirectory(prefix="coachdesk-backup-") as tmp:
            try:
                result = backup_write(output=Path(tmp) / name, chunk_size=chunk_size)
            except BackupError as exc:
                raise CommandError(f"backup failed: {exc}") from exc
            with open(result.path, "rb") as archive:
                saved = default_storage.save(stored, File(archive, name=name))
        self.stdout.write(result.summary("backed up to") + f" (uploaded to storage as {saved})")
