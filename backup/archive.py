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

An archive restores into a database at exactly the migration state it was written at, with
one exception: archives of an earlier table layout (models that moved between apps keeping
their tables and columns, e.g. before the one-app-per-concern reorganisation; columns with a
default and tables added since, e.g. before rubrics and the evals app) are mapped to today's
names by the explicit table in `backup/legacy.py`. The format itself (this
manifest, one JSON Lines member per table, the files) did not change with the layout, so
FORMAT_VERSION stays 1 for old and new archives alike: the migration state in the manifest
already says which layout an archive has, and a version bump would only make today's
archives unreadable to code that could not restore them anyway.

The modules:

    archive.py   the format: constants, the result, encoding, hashing, reading the members
                 and the manifest
    tables.py    what is in it: the tables in restore order, natural keys, migration state
    write.py     backup_write
    restore.py   backup_restore: the checks made before anything is written
    load.py      loading the rows and files in one transaction
    legacy.py    archives of earlier table layouts
"""

from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
import zlib
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import orjson
from django.core.exceptions import SuspiciousFileOperation
from django.core.files.utils import validate_file_name

FORMAT = "coachdesk-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DATA = "data/"
FILES = "files/"
READ_CHUNK_ROWS = 2000
WRITE_CHUNK_ROWS = 1000
# Bind parameters per INSERT: under PostgreSQL's 65,535 and SQLite's 32,766.
MAX_PARAMS = 30_000
COPY_BYTES = 1 << 20
# What reading a damaged archive raises (truncated gzip, bad tar headers, bad deflate data).
DAMAGED = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)
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


def table_member(label: str) -> str:
    """The member holding the rows of the model labelled `label` (`app.model`)."""
    return f"{DATA}{label}.jsonl"


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


def encode(row: dict[str, Any]) -> bytes:
    # orjson writes datetimes with their microseconds (Django's JSON encoder cuts them to
    # milliseconds, which would not round-trip). The stdlib takes the rare value orjson
    # refuses (an integer beyond 64 bits inside a JSON field).
    try:
        return orjson.dumps(row)
    except orjson.JSONEncodeError:
        return json.dumps(row, default=_default, ensure_ascii=False).encode()


def decode(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)


class Hashing:
    """A read-only stream that hashes (and counts) what is read through it. Given the
    `member` of an archive it reads from, a damaged archive is a BackupError naming it."""

    def __init__(self, raw: IO[bytes], *, member: str = "") -> None:
        self.raw = raw
        self.member = member
        self.sha = hashlib.sha256()
        self.size = 0

    # What storages ask of a file before they upload it (object storage streams it once).
    closed = False

    def seekable(self) -> bool:
        return False

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

    def drain(self) -> None:
        """Reads (and hashes) the rest of the stream."""
        while self.read(COPY_BYTES):
            pass

    @contextmanager
    def _damage(self) -> Iterator[None]:
        if not self.member:
            yield
            return
        try:
            yield
        except DAMAGED as exc:
            raise BackupError(
                f"member {self.member}: the archive is damaged or truncated "
                f"({exc or type(exc).__name__})"
            ) from exc


# --- reading an archive ---------------------------------------------------------------------


def read_members(
    path: Path, renames: Mapping[str, str] | None = None
) -> Generator[tuple[str, IO[bytes]]]:
    """The archive's members in order, each name (mapped through `renames`: an earlier
    layout's member names to today's) with a stream of its bytes. One forward pass over the
    gzip stream: nothing is extracted to disk, member names are never paths.

    tarfile takes a header cut short for the end of the archive, so a truncated archive
    can look like a shorter, well-formed one: after the last member the gzip stream is read
    to its end, where GzipFile checks the end-of-stream marker and the CRC."""
    renames = renames or {}
    try:
        with gzip.open(path, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
            for info in tar:
                if not info.isfile():
                    raise BackupError(f"member {info.name} is not a regular file")
                handle = tar.extractfile(info)
                assert handle is not None
                yield renames.get(info.name, info.name), handle
            while gz.read(COPY_BYTES):
                pass
    except BackupError:
        raise
    except DAMAGED as exc:
        raise BackupError(
            f"the archive is damaged or truncated ({exc or type(exc).__name__})"
        ) from exc


def read_manifest(path: Path) -> dict[str, Any]:
    """The archive's manifest as written (see `legacy.manifest_upgrade` for earlier
    layouts), its format, version, member list and migration state checked."""
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    members = read_members(path)
    try:
        name, handle = next(members)
        if name != MANIFEST:
            raise BackupError(f"not a Coachdesk backup: its first member is {name}, not {MANIFEST}")
        manifest = json.loads(Hashing(handle, member=MANIFEST).read())
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


def storage_name(member: str) -> str:
    """The storage name of a file member; never outside the storage's folder."""
    name = member.removeprefix(FILES)
    try:
        if name == member or not name:
            raise SuspiciousFileOperation(member)
        validate_file_name(name, allow_relative_path=True)
    except SuspiciousFileOperation as exc:
        raise BackupError(f"member {member}: not a safe storage name") from exc
    return name
