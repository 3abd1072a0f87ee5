"""Shared body of `import_interactions` and `import_feedback` (the same contract)."""

import sys
import time
from pathlib import Path
from typing import BinaryIO

from django.core.management.base import BaseCommand, CommandError

from ingest.readers import ProgressTracker, RecordError, iter_records
from ingest.services import IngestAborted, IngestResult


class ProgressBar:
    """A one-line progress bar on stderr, drawn only on a terminal, at most 5 times a second."""

    def __init__(self, stream, total_bytes: int | None, tracker: ProgressTracker) -> None:
        self.stream, self.total, self.tracker = stream, total_bytes, tracker
        self.enabled = stream.isatty()
        self.started = self.last = time.monotonic()

    def update(self, result: IngestResult, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 0.2):
            return
        self.last = now
        done = result.created + result.duplicates + result.rejected
        rate = done / max(now - self.started, 1e-6)
        if self.total:
            share = min(self.tracker.bytes_read / self.total, 1.0)
            bar = "#" * int(share * 30)
            head = f"[{bar:<30}] {share:6.1%}"
        else:
            head = f"{self.tracker.bytes_read / 1e6:8.1f} MB"
        self.stream.write(f"\r{head}  {done:,} records  {rate:,.0f}/s ")
        self.stream.flush()

    def close(self, result: IngestResult) -> None:
        if self.enabled:
            self.update(result, force=True)
            self.stream.write("\n")


class ImportCommand(BaseCommand):
    ingest = staticmethod(lambda *a, **k: IngestResult())  # set by subclasses
    source = "cli"

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", help="JSONL file (or one JSON array); '-' reads standard input")
        parser.add_argument("--batch-size", type=int, default=None, help="rows per transaction")

    def handle(self, *args, path: str, batch_size: int | None, **options) -> None:
        stream, total = self._open(path)
        tracker = ProgressTracker()
        bar = ProgressBar(sys.stderr, total, tracker)

        def report(error: RecordError) -> None:
            self.stdout.write(str(error))

        # A record may have several problems; the contract is one line per rejected record.
        last_position: list[int] = []

        def one_line_per_record(error: RecordError) -> None:
            if last_position and last_position[0] == error.position:
                return
            last_position[:] = [error.position]
            report(error)

        try:
            result = self.ingest_stream(
                stream,
                tracker,
                batch_size=batch_size,
                on_error=one_line_per_record,
                on_batch=bar.update,
            )
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}", returncode=2) from exc
        except IngestAborted as exc:
            raise CommandError(
                f"import stopped; batches before this point are stored: {exc}"
            ) from exc
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        bar.close(result)
        self.stdout.write(result.summary())
        if result.rejected:
            sys.exit(1)

    def ingest_stream(self, stream: BinaryIO, tracker: ProgressTracker, **options) -> IngestResult:
        return self.ingest(records=iter_records(stream, tracker), source=self.source, **options)

    def _open(self, path: str) -> tuple[BinaryIO, int | None]:
        if path == "-":
            return sys.stdin.buffer, None
        file = Path(path)
        try:
            return file.open("rb"), file.stat().st_size
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}", returncode=2) from exc
