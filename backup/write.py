"""`backup_write`: one archive of every table (from one snapshot) and the batch files.
The format is described in backup/archive.py."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from backup.archive import (
    FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    READ_CHUNK_ROWS,
    BackupError,
    Hashing,
    Result,
    encode,
)
from backup.tables import Table, check_migrated, migration_state, ref_maps, tables


def backup_write(
    *, output: Path, using: str = DEFAULT_DB_ALIAS, chunk_size: int = READ_CHUNK_ROWS
) -> Result:
    """Writes a backup archive of the decisions, pairs, batches (and everything they
    reference) and the batch files to `output`, which must not exist yet.

    Every table is read inside one transaction: READ ONLY, REPEATABLE READ on PostgreSQL,
    so all rows come from one snapshot while the app keeps running (called inside an open
    transaction, that transaction is the snapshot). SQLite's transaction holds its write
    lock for the duration. Rows are streamed `chunk_size` at a time into one temporary
    JSON Lines file per table beside `output`; the archive is written to `output.part` and
    renamed into place only when complete. Raises BackupError (nothing left behind).
    """
    started = time.monotonic()
    output = Path(output)
    if output.exists():
        raise BackupError(f"{output} already exists; choose another name")
    if not output.parent.is_dir():
        raise BackupError(f"folder {output.parent} does not exist")
    connection = connections[using]
    check_migrated(using)
    part = output.with_name(output.name + ".part")
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.") as tmp:
        outermost = not connection.in_atomic_block
        with transaction.atomic(using=using):
            if outermost and connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    # Must be the transaction's first statement; a caller's open transaction
                    # is used as it is.
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            manifest, local = _snapshot(Path(tmp), using=using, chunk_size=chunk_size)
        try:
            _write_archive(part, manifest, local)
            os.replace(part, output)
        except OSError as exc:
            raise BackupError(f"writing {output} failed: {exc}") from exc
        finally:
            part.unlink(missing_ok=True)
    files = [m for m in manifest["members"] if m["kind"] == "file"]
    return Result(
        path=output,
        counts=manifest["counts"],
        files=len(files),
        file_bytes=sum(m["size"] for m in files),
        archive_bytes=output.stat().st_size,
        seconds=time.monotonic() - started,
    )


def _snapshot(tmp: Path, *, using: str, chunk_size: int) -> tuple[dict[str, Any], dict[str, Path]]:
    """Dumps every table to `tmp` and hashes the batch files; returns the manifest and the
    local path of each data member."""
    from retraining.models import ExportBatch

    by_id = {kind: {pk: key for key, pk in keys.items()} for kind, keys in ref_maps(using).items()}
    members: list[dict[str, Any]] = []
    local: dict[str, Path] = {}
    counts: dict[str, int] = {}
    for table in tables():
        path = tmp / f"{table.label}.jsonl"
        member = _dump_table(table, path, by_id, using=using, chunk_size=chunk_size)
        members.append(member)
        local[member["name"]] = path
        counts[table.label] = member["rows"]
    names: set[str] = set()
    batches = (
        ExportBatch.objects.using(using).order_by("pk").values_list("pk", "file", "manifest_file")
    )
    for pk, *stored in batches.iterator(chunk_size=chunk_size):
        for name in stored:
            if name and name not in names:
                if not default_storage.exists(name):
                    raise BackupError(f"batch {pk}: its file {name} is missing from storage")
                names.add(name)
    for name in sorted(names):
        with default_storage.open(name, "rb") as handle:
            reader = Hashing(handle)
            reader.drain()
        members.append(
            {
                "name": FILES + name,
                "kind": "file",
                "size": reader.size,
                "sha256": reader.sha.hexdigest(),
            }
        )
    from retraining.build import code_version

    state = migration_state(using)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "code_version": code_version(),
        "database": connections[using].vendor,
        "migrations": {
            app: {"latest": applied[-1] if applied else None, "applied": applied}
            for app, applied in state.items()
        },
        "counts": counts,
        "members": members,
    }
    return manifest, local


def _dump_table(
    table: Table,
    path: Path,
    by_id: dict[str, dict[Any, Any]],
    *,
    using: str,
    chunk_size: int,
) -> dict[str, Any]:
    fields = table.fields()
    keys = table.keys()
    # Natural keys in place of group / permission ids; every other value as stored.
    convert: list[Callable[[Any], Any] | None] = [
        (by_id[table.refs[f.name]].__getitem__ if f.name in table.refs else None) for f in fields
    ]
    pk = [f.attname for f in table.model._meta.pk_fields]
    rows = (
        table.model._base_manager.using(using)
        .order_by(*pk)
        .values_list(*[f.attname for f in fields])
        .iterator(chunk_size=chunk_size)
    )
    sha = hashlib.sha256()
    size = count = 0
    with open(path, "wb") as out:
        for values in rows:
            row = {
                key: (fn(value) if fn and value is not None else value)
                for key, fn, value in zip(keys, convert, values, strict=True)
            }
            line = encode(row) + b"\n"
            out.write(line)
            sha.update(line)
            size += len(line)
            count += 1
    return {
        "name": table.member,
        "kind": "table",
        "model": table.label,
        "fields": keys,
        "rows": count,
        "size": size,
        "sha256": sha.hexdigest(),
    }


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    return info


def _write_archive(part: Path, manifest: dict[str, Any], local: dict[str, Path]) -> None:
    """The manifest first (a restore reads it before anything else), then the tables in
    restore order, then the files, streamed from storage and hashed again on the way: a
    file that changed since it was hashed fails the backup."""
    mtime = time.time()
    body = json.dumps(manifest, indent=2).encode() + b"\n"
    with tarfile.open(part, "w:gz", compresslevel=6) as tar:
        tar.addfile(_tarinfo(MANIFEST, len(body), mtime), io.BytesIO(body))
        for member in manifest["members"]:
            name = member["name"]
            if member["kind"] == "table":
                with open(local[name], "rb") as handle:
                    tar.addfile(_tarinfo(name, member["size"], mtime), handle)
                continue
            with default_storage.open(name.removeprefix(FILES), "rb") as handle:
                reader = Hashing(handle)
                tar.addfile(_tarinfo(name, member["size"], mtime), reader)  # type: ignore[arg-type]
                if reader.sha.hexdigest() != member["sha256"]:
                    raise BackupError(f"{name} changed in storage while the backup ran")
