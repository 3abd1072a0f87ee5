"""`backup_restore`: everything checked before anything is written, then the load
(backup/load.py). The format is described in backup/archive.py, archives of earlier table
layouts in backup/legacy.py."""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path
from typing import IO, Any

from django.contrib.auth.models import Group
from django.core.files.storage import default_storage
from django.db import DEFAULT_DB_ALIAS

from backup.archive import (
    FILES,
    BackupError,
    Hashing,
    Result,
    read_manifest,
    read_members,
    storage_name,
)
from backup.legacy import Layout, manifest_upgrade
from backup.load import load
from backup.tables import MIGRATION_APPS, check_migrated, migration_state, tables


def backup_restore(*, archive: Path, using: str = DEFAULT_DB_ALIAS) -> Result:
    """Restores an archive written by `backup_write` into a migrated database that holds
    no data yet (only what `migrate` made: groups, permissions, the default taxonomy).

    Before writing anything: reads the manifest (format and version; an archive of an
    earlier table layout is mapped to today's names), checks the migration state and
    columns match, refuses a database with data in it, reads the whole archive checking
    every member's size and sha256, and checks no different file is in storage under a
    batch file's name. Then loads every table in one transaction (constraints checked per
    statement on PostgreSQL, so a bad row is named), writes the files to storage, resets
    the id sequences and records the restore in the audit log. Any failure rolls the
    transaction back and deletes the files written. Raises BackupError.
    """
    started = time.monotonic()
    archive = Path(archive)
    manifest, layout = manifest_upgrade(read_manifest(archive))
    renames = layout.renames if layout else {}
    members = _check_compatible(manifest, layout, using)
    _check_empty(using)
    files = _verify(archive, manifest, renames)
    skip = set()
    for name in files:
        if default_storage.exists(name):
            with default_storage.open(name, "rb") as handle:
                reader = Hashing(handle)
                reader.drain()
            if reader.sha.hexdigest() != members[FILES + name]["sha256"]:
                raise BackupError(f"storage already holds a different file named {name}")
            skip.add(name)  # the same bytes are there already
    written: list[str] = []
    try:
        counts = load(archive, manifest, members, skip, written, layout=layout, using=using)
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


def _check_compatible(
    manifest: dict[str, Any], layout: Layout | None, using: str
) -> dict[str, dict[str, Any]]:
    """The archive's migration state and columns must be this database's and this code's
    (an earlier `layout`'s archive: once mapped to today's, without the tables the layout
    lacks). Returns the table members by name."""
    check_migrated(using)
    here = migration_state(using)
    mapped = f" (mapped from {layout.name})" if layout else ""
    for app in MIGRATION_APPS:
        theirs = manifest["migrations"].get(app) or {}
        if sorted(theirs.get("applied") or []) != here[app]:
            raise BackupError(
                f"migration state differs for {app}: the archive is at "
                f"{theirs.get('latest')}{mapped}, this database at "
                f"{here[app][-1] if here[app] else None}; "
                "restore with the code version that wrote the archive"
            )
    members = {m["name"]: m for m in manifest.get("members", [])}
    archived = [t for t in tables() if layout is None or layout.archived(t)]
    expected = [t.member for t in archived]
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
    for table in archived:
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


def _verify(path: Path, manifest: dict[str, Any], renames: dict[str, str]) -> list[str]:
    """Reads the whole archive once: every member listed, in order, with its size and
    sha256, nothing else. Returns the storage names of the files."""
    expected = list(manifest["members"])
    files: list[str] = []
    with closing(read_members(path, renames)) as members:
        next(members)  # the manifest
        for name, handle in members:
            _verify_member(name, handle, expected, files)
    if expected:
        raise BackupError(f"member {expected[0]['name']} is missing")
    return files


def _verify_member(
    name: str, handle: IO[bytes], expected: list[dict[str, Any]], files: list[str]
) -> None:
    if not expected:
        raise BackupError(f"member {name} is not in the manifest")
    want = expected.pop(0)
    if name != want["name"]:
        raise BackupError(f"member {want['name']} is missing (found {name} in its place)")
    reader = Hashing(handle, member=name)
    reader.drain()
    if reader.size != want["size"] or reader.sha.hexdigest() != want["sha256"]:
        raise BackupError(f"member {name} is corrupt: its sha256 does not match the manifest")
    if want["kind"] == "file":
        files.append(storage_name(name))
