"""The data work of a build: freeze the selection, stream it through a writer into a local
file, store the file and its manifest. No status changes here: retraining/services.py owns
the state machine and calls these while it holds the build's lease.

Memory is one chunk of rows (or one Parquet row group) whatever the batch size: the rows
are streamed from the database, duplicates are found in the database, and the file is
hashed as it is written.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import subprocess
import threading
import time
import zlib
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.utils import timezone

from core import db
from retraining import formats, selectors, sources
from retraining.errors import LeaseLost, NothingToExport, StaleRead
from retraining.models import BatchPair, ExportBatch

logger = logging.getLogger(__name__)

Status = ExportBatch.Status
Dataset = ExportBatch.Dataset
Format = ExportBatch.Format

SPLIT_BUCKETS = 10_000
# Advisory-lock namespace serialising "only new pairs" selections per agent (PostgreSQL).
_SELECTION_LOCK = 61_006
# Advisory-lock namespace between selections (shared) and removing a pair (exclusive), per
# agent: see `pair_removal_lock`.
_PAIR_REMOVAL_LOCK = 61_009


def pair_removal_lock(agent_id: int, *, exclusive: bool) -> None:
    """Every selection holds this lock shared, removing a pair (an undone decision) holds it
    exclusively, until their transaction ends. So a pair is never removed while a selection
    that could take it runs (its BatchPair rows have no foreign key to stop that), the
    remover sees every committed selection, and a selection waiting for it starts its
    statement after the removal committed. Selections never wait for each other here.
    PostgreSQL only; SQLite serialises writers anyway."""
    if connection.vendor != "postgresql":
        return
    function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [_PAIR_REMOVAL_LOCK, agent_id])


def split_threshold(share: float) -> int:
    return round(share * SPLIT_BUCKETS)


def split_of(text: str, share: float) -> str:
    """`validation` for a share of inputs, decided by the input text alone, so one input
    never lands on both sides: CRC-32 (zlib's, the same in every language) of the UTF-8
    text, modulo 10,000, below share × 10,000. A bucket function, not a security measure."""
    bucket = zlib.crc32(text.encode()) % SPLIT_BUCKETS
    return formats.VALIDATION if bucket < split_threshold(share) else formats.TRAIN


@functools.cache
def code_version() -> str:
    """The project version and, in a git checkout, the commit: recorded in every manifest."""
    try:
        version = importlib.metadata.version("coachdesk")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],  # noqa: S607
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"coachdesk {version}" + (f" ({commit})" if commit else "")


class Heartbeat:
    """Renews a build's lease and publishes its progress every few seconds, from a thread
    with its own database connection, so that the build's long statements (freezing the
    selection, the streamed read) never hold it up.

    The build checks `lost` between chunks. A row this connection cannot see (the build
    runs inside a caller's uncommitted transaction, e.g. a test) is nobody else's to take
    over either, so that is not a loss.
    """

    def __init__(self, batch: ExportBatch) -> None:
        self.batch_id = batch.pk
        self.token = batch.lease_token
        # Every second (the progress bar polls that often), and well within the lease.
        self.interval = min(1.0, max(0.2, settings.EXPORT_BUILD_LEASE_SECONDS / 4))
        self.done = self.total = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"export-heartbeat-{batch.pk}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        if self.lost:
            raise LeaseLost(f"batch {self.batch_id}: the build lease was taken over")

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                if not self._beat():
                    self.lost = True
                    return
        except DatabaseError:
            logger.exception("batch %s: heartbeat failed", self.batch_id)
        finally:
            connections.close_all()  # this thread's own connection

    def _beat(self) -> bool:
        progress = min(99, self.done * 100 // self.total) if self.total else 0
        if ExportBatch.objects.filter(
            pk=self.batch_id, status=Status.BUILDING, lease_token=self.token
        ).update(heartbeat_at=timezone.now(), progress=progress):
            return True
        return not ExportBatch.objects.filter(pk=self.batch_id).exists()


@dataclass
class Built:
    path: Path
    sha256: str
    size: int
    rows: int
    counts: dict[str, Any]
    writer: type[formats.Writer]
    stored: list[str] = field(default_factory=list)


def tmp_dir() -> Path:
    path = Path(settings.EXPORT_TMP_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def select(batch: ExportBatch) -> tuple[int, int]:
    """Freezes the batch's selection into BatchPair, duplicates flagged, unless an earlier
    attempt did; returns (pairs selected, duplicates among them).

    One transaction. "Only new pairs" selections of one agent are serialised (advisory lock)
    so two of them never take the same pair. On PostgreSQL one statement reads the
    selection once, inserts it and finds the repeated contents (hash aggregate); only the
    rows of repeated contents come back to Python. Its commit does not wait for the WAL
    flush: if the server crashed right after, the batch would still be `building`, its lease
    would expire and the next attempt would select again.
    """
    with transaction.atomic():
        held = BatchPair.objects.filter(batch=batch)
        if held.exists():
            return held.count(), held.filter(duplicate=True).count()
        pair_removal_lock(batch.agent_id, exclusive=False)
        pairs = selectors.pairs_matching(
            agent_id=batch.agent_id,
            filters=batch.filters,
            cutoff_id=batch.cutoff_id,
            exclude_batch_id=batch.pk,
        )
        sql, params = pairs.order_by().values_list("pk", "content_hash").query.sql_with_params()
        if connection.vendor == "postgresql":
            total, repeated = _select_pg(batch, sql, params)
        else:
            total, repeated = _select_portable(batch, sql, params)
        drop = _later_repeats(repeated)
        for start in range(0, len(drop), 10_000):
            held.filter(pair_id__in=drop[start : start + 10_000]).update(duplicate=True)
    if connection.vendor == "postgresql" and total > 20 * settings.EXPORT_CHUNK_SIZE:
        # Fresh statistics, so the chunk queries walk the key in order instead of sorting
        # the whole remaining selection for every chunk.
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(BatchPair._meta.db_table)}")
        except DatabaseError:
            logger.warning("batch %s: could not ANALYZE the batch pairs", batch.pk)
    return total, len(drop)


def _select_pg(batch: ExportBatch, sql: str, params: tuple) -> tuple[int, list[tuple[int, str]]]:
    table = connection.ops.quote_name(BatchPair._meta.db_table)
    with connection.cursor() as cursor:
        if batch.filters.get("new_only"):
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", [_SELECTION_LOCK, batch.agent_id]
            )
        cursor.execute("SET LOCAL synchronous_commit TO OFF")
        cursor.execute("SET LOCAL work_mem TO '64MB'")  # the hash aggregate below
        cursor.execute(
            f"WITH sel (id, content_hash) AS MATERIALIZED ({sql}),"  # noqa: S608 (our SQL)
            f" ins AS (INSERT INTO {table} (batch_id, pair_id, duplicate)"
            f"  SELECT {int(batch.pk)}, id, false FROM sel),"
            " rep AS (SELECT content_hash FROM sel GROUP BY content_hash HAVING count(*) > 1)"
            " SELECT 0, count(*)::text FROM sel"
            " UNION ALL SELECT sel.id, sel.content_hash FROM sel JOIN rep USING (content_hash)",
            params,
        )
        rows = cursor.fetchall()
    total = next(int(h) for pk, h in rows if pk == 0)
    return total, [(pk, h) for pk, h in rows if pk != 0]


def _select_portable(
    batch: ExportBatch, sql: str, params: tuple
) -> tuple[int, list[tuple[int, str]]]:
    table = connection.ops.quote_name(BatchPair._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (batch_id, pair_id, duplicate)"  # noqa: S608 (our SQL)
            f" SELECT {int(batch.pk)}, sel.pk, false FROM ({sql}) sel",
            params,
        )
        total = max(cursor.rowcount, 0)
    return total, selectors.batch_repeated_contents(batch)


def _later_repeats(repeated: list[tuple[int, str]]) -> list[int]:
    """The ids to drop: of the pairs sharing a content, all but the lowest id."""
    seen: set[str] = set()
    drop = []
    for pair_id, content_hash in sorted(repeated):
        if content_hash in seen:
            drop.append(pair_id)
        else:
            seen.add(content_hash)
    return drop


def rows_source() -> str:
    """Where a build streams its rows from: the replica once it has replayed everything
    committed so far (the selection just written included), else the primary. Pairs are
    immutable once selected and feedback is read below a fixed cutoff id, so a replica that
    has caught up returns exactly what the primary would."""
    if not db.has_replica() or connection.vendor != "postgresql":
        return DEFAULT_DB_ALIAS
    if db.replica_caught_up(db.primary_lsn(), timeout=settings.REPLICA_WAIT_SECONDS):
        return db.REPLICA
    logger.warning(
        "replica behind by more than %ss: the build reads the primary",
        settings.REPLICA_WAIT_SECONDS,
    )
    return DEFAULT_DB_ALIAS


def write(batch: ExportBatch) -> Built:
    """Writes the batch to a local file (under EXPORT_TMP_DIR) while a heartbeat keeps its
    lease; raises LeaseLost when the lease was taken over. The caller stores or discards it."""
    with Heartbeat(batch) as heartbeat:
        return _write(batch, heartbeat)


def _write(batch: ExportBatch, heartbeat: Heartbeat) -> Built:
    writer_class = sources.writer_for(batch.dataset, batch.format)
    chunk_size = settings.EXPORT_CHUNK_SIZE
    delay = settings.EXPORT_TEST_CHUNK_DELAY_SECONDS
    source = sources.get(batch.dataset)
    pairs = batch.dataset == Dataset.PAIRS
    if source is not None:
        # A registered dataset (retraining/sources.py): its rows as of the request.
        selected = total = source.rows(batch).count()
        chunks = source.chunks(batch, writer_class.fields, chunk_size, using=rows_source())
    elif pairs:
        selected, duplicates = select(batch)
        total = selected - duplicates
        chunks = selectors.batch_pair_chunks(
            batch, writer_class.fields, chunk_size, using=rows_source()
        )
    else:
        selected = total = selectors.feedback_matching(
            agent_id=batch.agent_id, filters=batch.filters, cutoff_id=batch.cutoff_id
        ).count()
        chunks = selectors.feedback_chunks(
            batch, writer_class.fields, chunk_size, using=rows_source()
        )
    if not total:
        # A 0-row file would be "ready" and look like a batch; it fails with the reason
        # instead (the request already refuses a selection known to be empty, but the rows
        # can be gone by now: "only new pairs" taken by another batch first).
        what = source.what if source else "training pairs" if pairs else "feedback events"
        held = " (only pairs in no earlier batch)" if batch.filters.get("new_only") else ""
        raise NothingToExport(
            f"Nothing to export: no {what} matched this batch's filters{held} when it was built."
        )
    heartbeat.total = total

    threshold = split_threshold(batch.validation_share)
    crc32, TRAIN, VALIDATION = zlib.crc32, formats.TRAIN, formats.VALIDATION  # noqa: N806
    path = tmp_dir() / f"batch-{batch.pk}-{batch.lease_token[:8]}.{writer_class.extension}.part"
    by_split: Counter[tuple[str, str]] = Counter()
    written = 0
    with open(path, "wb") as raw:
        sink = formats.HashingSink(raw)
        writer = writer_class(
            sink,
            tmp_dir=path.parent,
            system_prompt=batch.filters.get("system_prompt", ""),
            categories=selectors.category_slugs(),
            row_group_rows=settings.EXPORT_PARQUET_ROW_GROUP_ROWS,
        )
        try:
            with closing(chunks):  # closed early too, so the connection is free again
                for rows in chunks:
                    if pairs:
                        # split_of(), inlined: this runs once per row.
                        splits = [
                            VALIDATION
                            if crc32(row[1].encode()) % SPLIT_BUCKETS < threshold
                            else TRAIN
                            for row in rows
                        ]
                        by_split.update(zip(splits, (row[3] for row in rows), strict=True))
                    elif source is not None:
                        splits = []
                        by_split.update(("all", source.tally(row)) for row in rows)
                    else:
                        splits = []
                        by_split.update(("all", row[4]) for row in rows)
                    writer.write(rows, splits)
                    written += len(rows)
                    heartbeat.done = written
                    heartbeat.check()
                    if delay:
                        time.sleep(delay)
            if written != total:
                raise StaleRead(f"{written} of the {total} selected rows were read; retrying")
            writer.close()
            sink.finish()
        except BaseException:
            writer.discard()
            sink.abort()
            path.unlink(missing_ok=True)
            raise
    counts = _counts(
        by_split,
        pairs=pairs,
        selected=selected,
        written=written,
        key=source.count_key if source else "by_kind",
    )
    return Built(path, sink.hexdigest(), sink.size, written, counts, writer_class)


def _counts(
    by_split: Counter[tuple[str, str]],
    *,
    pairs: bool,
    selected: int,
    written: int,
    key: str = "by_kind",
) -> dict[str, Any]:
    if not pairs:
        kinds: Counter[str] = Counter()
        for (_, kind), n in by_split.items():
            kinds[kind] += n
        return {"rows": written, key: dict(sorted(kinds.items()))}
    splits: dict[str, dict[str, int]] = {}
    for (split, source), n in sorted(by_split.items()):
        splits.setdefault(split, {})[source] = n
    by_source: Counter[str] = Counter()
    for (_, source), n in by_split.items():
        by_source[source] += n
    return {
        "rows": written,
        "selected": selected,
        "duplicates_dropped": selected - written,
        "by_split": {
            s: sum(splits.get(s, {}).values()) for s in (formats.TRAIN, formats.VALIDATION)
        },
        "by_source": dict(sorted(by_source.items())),
        "by_split_and_source": splits,
    }


class _LocalFile(File):
    """A finished local file: FileSystemStorage moves it into place (a rename on the same
    filesystem) instead of copying; other storages upload it."""

    def temporary_file_path(self) -> str:
        assert self.file is not None
        return self.file.name


def manifest_of(batch: ExportBatch, built: Built) -> dict[str, Any]:
    train = built.counts.get("by_split", {}).get(formats.TRAIN, 0)
    source = sources.get(batch.dataset)
    order: Any = "event_id" if batch.dataset == Dataset.FEEDBACK else "pair_id"
    if source is not None:
        order = source.order
    if not built.writer.in_source_order:
        order = {
            "train": {"first_line": 1, "last_line": train},
            "validation": {"first_line": train + 1, "last_line": built.rows},
            "within_each": "pair_id",
        }
    manifest = {
        "id": batch.pk,
        "agent": batch.agent.slug,
        "dataset": batch.dataset,
        "format": batch.format,
        "file": selectors.download_name(batch),
        "content_type": built.writer.content_type,
        "size_bytes": built.size,
        "sha256": built.sha256,
        "columns": list(built.writer.columns),
        "row_order": order,
        "filters": batch.filters,
        "data_cutoff_id": batch.cutoff_id,
        **(
            {"data_cutoff_time": batch.created_at.isoformat(), "selection": source.description}
            if source is not None
            else {}
        ),
        "counts": built.counts,
        "created_at": batch.created_at.isoformat(),
        "created_by": batch.created_by.get_username() if batch.created_by else None,
        "built_at": timezone.now().isoformat(),
        "code_version": code_version(),
        "libraries": {
            name: importlib.metadata.version(name) for name in ("pyarrow", "orjson", "Django")
        },
    }
    if batch.dataset == Dataset.PAIRS:
        manifest["split"] = {
            "validation_share": batch.validation_share,
            "method": "zlib CRC-32 of the UTF-8 input text modulo 10000; below "
            "validation_share × 10000 is validation",
        }
        manifest["deduplication"] = "exact (input, output) repeats dropped; the lowest pair_id kept"
    if batch.format == Format.PARQUET:
        manifest["parquet"] = {
            "compression": "snappy",
            "row_group_rows": settings.EXPORT_PARQUET_ROW_GROUP_ROWS,
        }
    return manifest


def store(batch: ExportBatch, built: Built) -> tuple[str, str, dict[str, Any]]:
    """Puts the finished file into storage (FileSystemStorage renames it into place), then
    its manifest beside it; returns (file name, manifest name, manifest). The names carry
    the lease token: a stale builder can never overwrite the files of the one that won."""
    base = f"exports/{batch.agent.slug}/batch-{batch.pk}-{batch.lease_token[:8]}"
    with open(built.path, "rb") as local:
        name = default_storage.save(f"{base}.{built.writer.extension}", _LocalFile(local))
    built.stored.append(name)
    built.path.unlink(missing_ok=True)  # storages that copy leave it behind
    manifest = manifest_of(batch, built)
    manifest_name = default_storage.save(
        f"{base}.manifest.json", ContentFile(json.dumps(manifest, indent=2).encode() + b"\n")
    )
    built.stored.append(manifest_name)
    return name, manifest_name, manifest


def discard(built: Built | None) -> None:
    """Deletes whatever a build that will not finish left behind, locally and in storage."""
    if built is None:
        return
    built.path.unlink(missing_ok=True)
    for name in built.stored:
        default_storage.delete(name)


def tmp_files_sweep(stale) -> None:
    """Deletes local partial files of builds that died on this machine."""
    folder = Path(settings.EXPORT_TMP_DIR)
    if not folder.is_dir():
        return
    limit = stale.timestamp()
    for path in folder.glob("*.part"):
        try:
            if path.stat().st_mtime < limit:
                path.unlink()
        except FileNotFoundError:
            continue
