"""Backup and restore of Coachdesk's data: decisions, training pairs and export batches
with everything they reference, and the batch files from storage, in one archive.

The archive is a gzipped tar:

    manifest.json                       format, version, created_at, migration state,
                                        row counts, and the size and sha256 of every member
    data/<app>.<model>.jsonl            one JSON object per row, keyed by column (attname)
    files/<storage name>                the batch files and their manifests, byte for byte

Rows keep their ids, so every reference between them holds without any remapping. The only
rows whose ids differ between databases are Django's groups and permissions (made by
`migrate`): they travel by natural key (a group by its name, a permission by app label,
model and codename) and are mapped to the target's ids on restore.

`backup_write` reads every table inside one read-only REPEATABLE READ transaction on
PostgreSQL, so all tables come from the same snapshot. `backup_restore` checks the whole
archive before writing anything, then loads it in one transaction and writes the files;
any failure rolls the database back and deletes the files it wrote.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import SuspiciousFileOperation, ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.files.utils import validate_file_name
from django.core.management.color import no_style
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Field, Model

FORMAT = "coachdesk-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA = "data/"
FILES = "files/"
# The apps whose tables are in the archive; their migration state must match on restore.
PROJECT_APPS = ("core", "accounts", "agents", "reviews", "retraining", "kpis")
MIGRATION_APPS = ("contenttypes", "auth", *PROJECT_APPS)
READ_CHUNK_ROWS = 2000
WRITE_CHUNK_ROWS = 1000
# Bind parameters per INSERT: under PostgreSQL's 65,535 and SQLite's 32,766.
MAX_PARAMS = 30_000
COPY_BYTES = 1 << 20
GROUP, PERMISSION = "group", "permission"
# What reading a damaged archive raises (truncated gzip, bad tar headers, bad deflate data).
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)
# The counts the one-line summaries show, in this order.
HEADLINE = {
    "auth.user": "users",
    "agents.agent": "agents",
    "agents.interaction": "interactions",
    "agents.feedbackevent": "feedback events",
    "reviews.reviewitem": "review items",
    "reviews.review": "reviews",
    "retraining.trainingpair": "training pairs",
    "retraining.exportbatch": "batches",
}


class BackupError(Exception):
    """The backup or restore cannot go on; `str()` says why (and which member and line)."""


@dataclass(frozen=True)
class Table:
    """One table of the archive.

    `keep_ids`: rows are restored with their ids (every table except groups and the
    membership tables that point at groups / permissions, whose ids mean nothing elsewhere).
    `replace`: the target's own rows are deleted before loading: rows `migrate` creates
    (the default error taxonomy) or bookkeeping that is only meaningful with the data (KPI
    cursors and runs of an empty database). `refs`: foreign keys written as natural keys.
    """

    model: type[Model]
    keep_ids: bool = True
    replace: bool = False
    refs: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def member(self) -> str:
        return f"{DATA}{self.label}.jsonl"

    def fields(self) -> list[Field]:
        return [
            f
            for f in self.model._meta.concrete_fields
            if not getattr(f, "generated", False) and (self.keep_ids or not f.primary_key)
        ]

    def key(self, f: Field) -> str:
        return f.name if f.name in self.refs else f.attname

    def keys(self) -> list[str]:
        return [self.key(f) for f in self.fields()]


def tables() -> list[Table]:
    """Every table of the archive, parents before children (the restore order).

    KPI tables are included although a full recompute could rebuild the snapshots: they are
    small (rows per agent and day, not per interaction), and alerts and their webhook
    deliveries are history a recompute cannot rebuild (it would raise and send them again).
    Any other model of the project's apps comes after these, so a table added later is in
    the backup unless it is deliberately left out here. Today that adds the task outbox:
    its tasks are idempotent, so a message published again after a restore is harmless.
    Left out: sessions (everyone logs in again), Django admin's change log, content types
    and permissions (made by `migrate`)."""
    from accounts.models import ApiToken, ReviewerProfile
    from agents.models import Agent, FeedbackEvent, Interaction
    from core.models import AuditEvent
    from kpis.models import Alert, AlertDelivery, KpiCursor, KpiRun, KpiSnapshot
    from retraining.models import BatchPair, ExportBatch, TrainingPair
    from reviews.models import ErrorCategory, Review, ReviewItem

    user = get_user_model()
    listed = [
        Table(Group, keep_ids=False),
        Table(
            Group.permissions.through,
            keep_ids=False,
            refs={"group": GROUP, "permission": PERMISSION},
        ),
        Table(user),
        Table(user.groups.through, keep_ids=False, refs={"group": GROUP}),
        Table(user.user_permissions.through, keep_ids=False, refs={"permission": PERMISSION}),
        Table(ReviewerProfile),
        Table(Agent),
        Table(ErrorCategory, replace=True),
        Table(Interaction),
        Table(FeedbackEvent),
        Table(ReviewItem),
        Table(Review),
        Table(ApiToken),
        Table(AuditEvent),
        Table(TrainingPair),
        Table(TrainingPair.reviews.through),
        Table(TrainingPair.reviewers.through),
        Table(ExportBatch),
        Table(BatchPair),
        Table(KpiSnapshot),
        Table(KpiCursor, replace=True),
        Table(KpiRun, replace=True),
        Table(Alert),
        Table(AlertDelivery),
    ]
    known = {t.model for t in listed}
    for app in PROJECT_APPS:
        extra = [
            m
            for m in django_apps.get_app_config(app).get_models(include_auto_created=True)
            if m not in known and m._meta.managed and not m._meta.proxy
        ]
        # A model before the many-to-many tables that point at it.
        extra.sort(key=lambda m: bool(m._meta.auto_created))
        listed += [Table(m) for m in extra]
    return listed


@dataclass
class Result:
    """What a backup wrote or a restore loaded."""

    path: Path
    counts: dict[str, int]
    files: int
    file_bytes: int
    archive_bytes: int
    seconds: float

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def summary(self, verb: str) -> str:
        parts = [f"{self.counts.get(label, 0):,} {name}" for label, name in HEADLINE.items()]
        return (
            f"{verb} {self.path}: {', '.join(parts)}, {self.files} batch files "
            f"({_mb(self.file_bytes)}); {self.rows:,} rows in {len(self.counts)} tables; "
            f"archive {_mb(self.archive_bytes)}; {self.seconds:.1f} s"
        )


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


# --- encoding -------------------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _encode(row: dict[str, Any]) -> bytes:
    # orjson writes datetimes with their microseconds (Django's JSON encoder cuts them to
    # milliseconds, which would not round-trip). The stdlib takes the rare value orjson
    # refuses (an integer beyond 64 bits inside a JSON field).
    try:
        return orjson.dumps(row)
    except orjson.JSONEncodeError:
        return json.dumps(row, default=_default, ensure_ascii=False).encode()


def _decode(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


def _ref_maps(using: str) -> dict[str, dict[Any, Any]]:
    """The target's (or source's) groups and permissions: natural key → id."""
    permissions = Permission.objects.using(using).values_list(
        "pk", "content_type__app_label", "content_type__model", "codename"
    )
    return {
        GROUP: dict(Group.objects.using(using).values_list("name", "pk")),
        PERMISSION: {(app, model, code): pk for pk, app, model, code in permissions},
    }


def _migration_state(using: str) -> dict[str, list[str]]:
    applied = MigrationRecorder(connections[using]).applied_migrations()
    state: dict[str, list[str]] = {app: [] for app in MIGRATION_APPS}
    for app, name in applied:
        if app in state:
            state[app].append(name)
    return {app: sorted(names) for app, names in state.items()}


def _check_migrated(using: str) -> None:
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        pending = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
        raise BackupError(
            f"the database is not fully migrated (pending: {pending}); run manage.py migrate"
        )


class _Hashing:
    """A read-only stream that hashes (and counts) what is read through it. Given the
    `member` of an archive it reads from, a damaged archive is a BackupError naming it."""

    def __init__(self, raw: IO[bytes], *, member: str = "") -> None:
        self.raw = raw
        self.member = member
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        with self._damage():
            data = self.raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            with self._damage():
                line = self.raw.readline()
            if not line:
                return
            self.sha.update(line)
            self.size += len(line)
            yield line

    @contextmanager
    def _damage(self) -> Iterator[None]:
        if not self.member:
            yield
            return
        try:
            yield
        except _DAMAGED as exc:
            raise BackupError(
                f"member {self.member}: the archive is damaged or truncated "
                f"({exc or type(exc).__name__})"
            ) from exc


# --- backup ---------------------------------------------------------------------------------


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
    _check_migrated(using)
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

    by_id = {kind: {pk: key for key, pk in keys.items()} for kind, keys in _ref_maps(using).items()}
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
            reader = _Hashing(handle)
            while reader.read(COPY_BYTES):
                pass
        members.append(
            {
                "name": FILES + name,
                "kind": "file",
                "size": reader.size,
                "sha256": reader.sha.hexdigest(),
            }
        )
    from retraining.build import code_version

    state = _migration_state(using)
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
            line = _encode(row) + b"\n"
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
                reader = _Hashing(handle)
                tar.addfile(_tarinfo(name, member["size"], mtime), reader)  # type: ignore[arg-type]
                if reader.sha.hexdigest() != member["sha256"]:
                    raise BackupError(f"{name} changed in storage while the backup ran")


# --- restore --------------------------------------------------------------------------------


def _members(path: Path) -> Generator[tuple[tarfile.TarInfo, IO[bytes]]]:
    """The archive's members in order, each with a stream of its bytes (one forward pass
    over the gzip stream: nothing is extracted to disk, member names are never paths).

    tarfile takes a header cut short for the end of the archive, so a truncated archive
    can look like a shorter, well-formed one: after the last member the gzip stream is read
    to its end, where GzipFile checks the end-of-stream marker and the CRC."""
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    raise BackupError(f"member {info.name} is not a regular file")
                handle = tar.extractfile(info)
                assert handle is not None
                yield info, handle
            while gz.read(COPY_BYTES):
                pass
    except BackupError:
        raise
    except _DAMAGED as exc:
        raise BackupError(
            f"the archive is damaged or truncated ({exc or type(exc).__name__})"
        ) from exc


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    members = _members(path)
    try:
        info, handle = next(members)
        if info.name != MANIFEST:
            raise BackupError(
                f"not a Coachdesk backup: its first member is {info.name}, not {MANIFEST}"
            )
        manifest = json.loads(_Hashing(handle, member=MANIFEST).read())
    except StopIteration:
        raise BackupError("the archive is empty") from None
    except ValueError as exc:
        raise BackupError(f"{MANIFEST} is not valid JSON ({exc})") from exc
    finally:
        members.close()
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"not a Coachdesk backup: {MANIFEST} does not say format {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"archive format version {manifest.get('format_version')!r} is not supported "
            f"(this code reads version {FORMAT_VERSION})"
        )
    listed = manifest.get("members")
    if not isinstance(listed, list) or not all(
        isinstance(m, dict)
        and isinstance(m.get("name"), str)
        and m.get("kind") in ("table", "file")
        and isinstance(m.get("size"), int)
        and isinstance(m.get("sha256"), str)
        for m in listed
    ):
        raise BackupError(f"{MANIFEST} is malformed: its member list cannot be read")
    if not isinstance(manifest.get("migrations"), dict) or not all(
        isinstance(v, dict) for v in manifest["migrations"].values()
    ):
        raise BackupError(f"{MANIFEST} is malformed: its migration state cannot be read")
    return manifest


def _check_compatible(manifest: dict[str, Any], using: str) -> dict[str, dict[str, Any]]:
    """The archive's migration state and columns must be this database's and this code's.
    Returns the table members by name."""
    _check_migrated(using)
    here = _migration_state(using)
    for app in MIGRATION_APPS:
        theirs = manifest["migrations"].get(app) or {}
        if sorted(theirs.get("applied") or []) != here[app]:
            raise BackupError(
                f"migration state differs for {app}: the archive is at "
                f"{theirs.get('latest')}, this database at {here[app][-1] if here[app] else None}; "
                "restore with the code version that wrote the archive"
            )
    members = {m["name"]: m for m in manifest.get("members", [])}
    expected = [t.member for t in tables()]
    listed = [m["name"] for m in manifest["members"] if m.get("kind") == "table"]
    if listed != expected:
        missing = [n for n in expected if n not in listed]
        extra = [n for n in listed if n not in expected]
        raise BackupError(
            "the archive's tables are not this code version's ("
            + "; ".join(
                [f"missing: {', '.join(missing)}"] * bool(missing)
                + [f"unknown: {', '.join(extra)}"] * bool(extra)
                or ["in another order"]
            )
            + "); restore with the code version that wrote it"
        )
    for table in tables():
        if members[table.member].get("fields") != table.keys():
            raise BackupError(
                f"{table.member}: its columns {members[table.member].get('fields')} are not "
                f"this code's {table.keys()}"
            )
    return members


def _check_empty(using: str) -> None:
    """Refuses a database that already holds data: restored ids would collide with it,
    and merging two histories is not what a restore is for."""
    full = []
    for table in tables():
        if table.replace or table.model in (Group, Group.permissions.through):
            continue
        count = table.model._base_manager.using(using).count()
        if count:
            full.append(f"{table.label}: {count:,} rows")
    if full:
        raise BackupError(
            "the database already holds data ("
            + ", ".join(full[:6])
            + (", …" if len(full) > 6 else "")
            + "); restore into a freshly migrated, empty database"
        )


def _verify(path: Path, manifest: dict[str, Any]) -> list[str]:
    """Reads the whole archive once: every member listed, in order, with its size and
    sha256, nothing else. Returns the storage names of the files."""
    expected = list(manifest["members"])
    files: list[str] = []
    with closing(_members(path)) as members:
        next(members)  # the manifest
        for info, handle in members:
            _verify_member(info, handle, expected, files)
    if expected:
        raise BackupError(f"member {expected[0]['name']} is missing")
    return files


def _verify_member(
    info: tarfile.TarInfo, handle: IO[bytes], expected: list[dict[str, Any]], files: list[str]
) -> None:
    if not expected:
        raise BackupError(f"member {info.name} is not in the manifest")
    want = expected.pop(0)
    if info.name != want["name"]:
        raise BackupError(f"member {want['name']} is missing (found {info.name} in its place)")
    reader = _Hashing(handle, member=info.name)
    while reader.read(COPY_BYTES):
        pass
    if reader.size != want["size"] or reader.sha.hexdigest() != want["sha256"]:
        raise BackupError(f"member {info.name} is corrupt: its sha256 does not match the manifest")
    if want["kind"] == "file":
        files.append(_storage_name(info.name))


def _storage_name(member: str) -> str:
    """The storage name of a file member; never outside the storage's folder."""
    name = member.removeprefix(FILES)
    try:
        if name == member or not name:
            raise SuspiciousFileOperation(member)
        validate_file_name(name, allow_relative_path=True)
    except SuspiciousFileOperation as exc:
        raise BackupError(f"member {member}: not a safe storage name") from exc
    return name


def backup_restore(*, archive: Path, using: str = DEFAULT_DB_ALIAS) -> Result:
    """Restores an archive written by `backup_write` into a migrated database that holds
    no data yet (only what `migrate` made: groups, permissions, the default taxonomy).

    Before writing anything: reads the manifest (format and version), checks the migration
    state and columns match, refuses a database with data in it, reads the whole archive
    checking every member's size and sha256, and checks no different file is in storage
    under a batch file's name. Then loads every table in one transaction (constraints
    checked per statement on PostgreSQL, so a bad row is named), writes the files to
    storage, resets the id sequences and records the restore in the audit log. Any failure
    rolls the transaction back and deletes the files written. Raises BackupError.
    """
    started = time.monotonic()
    archive = Path(archive)
    manifest = _read_manifest(archive)
    members = _check_compatible(manifest, using)
    _check_empty(using)
    files = _verify(archive, manifest)
    skip = set()
    for name in files:
        if default_storage.exists(name):
            with default_storage.open(name, "rb") as handle:
                reader = _Hashing(handle)
                while reader.read(COPY_BYTES):
                    pass
            if reader.sha.hexdigest() != members[FILES + name]["sha256"]:
                raise BackupError(f"storage already holds a different file named {name}")
            skip.add(name)  # the same bytes are there already
    written: list[str] = []
    try:
        counts = _load(archive, manifest, members, skip, written, using=using)
    except BaseException:
        for name in written:
            default_storage.delete(name)
        raise
    file_members = [m for m in manifest["members"] if m["kind"] == "file"]
    return Result(
        path=archive,
        counts=counts,
        files=len(file_members),
        file_bytes=sum(m["size"] for m in file_members),
        archive_bytes=archive.stat().st_size,
        seconds=time.monotonic() - started,
    )


def _load(
    archive: Path,
    manifest: dict[str, Any],
    members: dict[str, dict[str, Any]],
    skip: set[str],
    written: list[str],
    *,
    using: str,
) -> dict[str, int]:
    from core.models import AuditEvent
    from retraining.models import ExportBatch

    connection = connections[using]
    by_member = {t.member: t for t in tables()}
    counts: dict[str, int] = {}
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at commit, a broken
                # reference could not be traced to its line. Checked per statement instead.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        maps = _ref_maps(using)
        for table in by_member.values():
            if table.replace:
                table.model._base_manager.using(using).all().delete()
        with closing(_members(archive)) as stream:
            next(stream)  # the manifest, read already
            for info, handle in stream:
                reader = _Hashing(handle, member=info.name)
                if info.name in by_member:
                    table = by_member[info.name]
                    counts[table.label] = _load_table(table, reader, maps, using=using)
                    if table.model is ExportBatch:
                        _check_batch_files(members, using=using)
                else:
                    _load_file(info.name, reader, skip, written)
                want = members[info.name]
                if reader.size != want["size"] or reader.sha.hexdigest() != want["sha256"]:
                    raise BackupError(f"member {info.name} changed since it was verified")
        _reset_sequences(using)
        AuditEvent.objects.using(using).create(
            action="data.restored",
            target_type="backup",
            after={
                "archive": archive.name,
                "created_at": manifest["created_at"],
                "code_version": manifest.get("code_version", ""),
                "rows": sum(counts.values()),
            },
        )
    return counts


def _check_batch_files(members: dict[str, dict[str, Any]], *, using: str) -> None:
    """Every file a restored batch points at is in the archive, and nothing else is."""
    from retraining.models import ExportBatch

    referenced: set[str] = set()
    for names in ExportBatch.objects.using(using).values_list("file", "manifest_file"):
        referenced.update(n for n in names if n)
    archived = {n.removeprefix(FILES) for n in members if n.startswith(FILES)}
    if referenced != archived:
        odd = sorted(referenced - archived) or sorted(archived - referenced)
        raise BackupError(f"the batches' files and the archived files differ ({odd[0]})")


def _load_file(member: str, reader: _Hashing, skip: set[str], written: list[str]) -> None:
    name = _storage_name(member)
    if name in skip:  # the same bytes are in storage already
        while reader.read(COPY_BYTES):
            pass
        return
    saved = default_storage.save(name, File(reader, name=name))  # type: ignore[arg-type]
    written.append(saved)
    if saved != name:
        raise BackupError(f"member {member}: storage saved it as {saved}, not {name}")


def _load_table(
    table: Table, reader: _Hashing, maps: dict[str, dict[Any, Any]], *, using: str
) -> int:
    fields = table.fields()
    keys = table.keys()
    wanted = set(keys)
    per_insert = max(1, min(WRITE_CHUNK_ROWS, MAX_PARAMS // max(1, len(fields))))
    batch: list[list[Any]] = []
    lines: list[int] = []
    count = 0
    for number, raw in enumerate(reader, start=1):
        where = f"{table.member} line {number}"
        try:
            row = _decode(raw)
        except ValueError as exc:
            raise BackupError(f"{where}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or set(row) != wanted:
            raise BackupError(f"{where}: expected the fields {', '.join(keys)}")
        values: list[Any] = []
        for f, key in zip(fields, keys, strict=True):
            value = row[key]
            if f.name in table.refs and value is not None:
                natural = tuple(value) if isinstance(value, list) else value
                if natural not in maps[table.refs[f.name]]:
                    raise BackupError(f"{where}: {key} {value!r} does not exist in this database")
                values.append(maps[table.refs[f.name]][natural])
                continue
            try:
                values.append(f.to_python(value))
            except ValidationError as exc:
                raise BackupError(f"{where}: {key}: {' '.join(exc.messages)}") from exc
        if table.model is Group:
            # By name: the target's own group keeps its id, a missing one is created.
            group, _ = Group.objects.using(using).get_or_create(name=values[0])
            maps[GROUP][group.name] = group.pk
        else:
            batch.append(values)
            lines.append(number)
            if len(batch) >= per_insert:
                _insert(table, batch, lines, fields, using=using)
                batch, lines = [], []
        count += 1
    if batch:
        _insert(table, batch, lines, fields, using=using)
    return count


def _insert(
    table: Table, rows: list[list[Any]], lines: list[int], fields: list[Field], *, using: str
) -> None:
    """The rows (values in `fields` order) in one statement in a savepoint; when it fails,
    one by one to name the line that does."""
    try:
        with transaction.atomic(using=using):
            _write_rows(table, rows, fields, using=using)
    except DatabaseError:
        for row, number in zip(rows, lines, strict=True):
            try:
                with transaction.atomic(using=using):
                    _write_rows(table, [row], fields, using=using)
            except DatabaseError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise BackupError(f"{table.member} line {number}: {first}") from exc
        raise


def _write_rows(table: Table, rows: list[list[Any]], fields: list[Field], *, using: str) -> None:
    connection = connections[using]
    if (
        connection.vendor == "postgresql"
        and len(rows) > 1
        and table.model is not Group.permissions.through
    ):
        _copy_rows(table, rows, fields, using=using)
        return
    manager = table.model._base_manager.using(using)
    attnames = [f.attname for f in fields]
    objs = [table.model(**dict(zip(attnames, row, strict=True))) for row in rows]
    if table.model is Group.permissions.through:
        # The target's groups may hold these permissions already (a migration's doing).
        manager.bulk_create(objs, ignore_conflicts=True)
        return
    # The raw insert bulk_create and Model.save(raw=True) (loaddata) are built on: `raw`
    # keeps the archived auto_now / auto_now_add values instead of stamping "now".
    manager._insert(objs, fields=fields, raw=True, using=using)  # type: ignore[attr-defined]


def _copy_rows(table: Table, rows: list[list[Any]], fields: list[Field], *, using: str) -> None:
    """PostgreSQL's COPY: several times faster than a multi-row INSERT, whose parameters
    psycopg quotes in Python. The values as archived (no auto_now stamping, like `raw`)."""
    connection = connections[using]
    quote = connection.ops.quote_name
    sql = (
        f"COPY {quote(table.model._meta.db_table)} "
        f"({', '.join(quote(f.column or f.attname) for f in fields)}) FROM STDIN"
    )
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(sql) as copy,
    ):
        for row in rows:
            copy.write_row(
                [f.get_db_prep_save(v, connection) for f, v in zip(fields, row, strict=True)]
            )


def _reset_sequences(using: str) -> None:
    """Points every id sequence past the restored ids (PostgreSQL; SQLite's AUTOINCREMENT
    follows the highest id by itself)."""
    connection = connections[using]
    models = [t.model for t in tables()]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    if statements:
        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
