"""Loading an archive that `backup_restore` has checked: every table in one transaction,
the batch files into storage, the id sequences past the restored ids, an audit event."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management.color import no_style
from django.db import DatabaseError, connections, transaction
from django.db.models import Field

from backup.archive import (
    FILES,
    MAX_PARAMS,
    WRITE_CHUNK_ROWS,
    BackupError,
    Hashing,
    decode,
    read_members,
    storage_name,
)
from backup.legacy import Layout
from backup.tables import GROUP, Table, ref_maps, tables


def load(
    archive: Path,
    manifest: dict[str, Any],
    members: dict[str, dict[str, Any]],
    skip: set[str],
    written: list[str],
    *,
    layout: Layout | None,
    using: str,
) -> dict[str, int]:
    """Loads every member of `archive` (verified against `manifest`, whose table
    `members` are by name) in one transaction: the tables, and the files into storage but
    those in `skip` (there already), appending each storage name it writes to `written` for
    the caller to delete on failure. Rows of an earlier `layout` are mapped to today's.
    Returns the rows loaded per table label (0 for a table the layout's archives lack).
    Raises BackupError."""
    from core.models import AuditEvent
    from retraining.models import ExportBatch

    connection = connections[using]
    by_member = {t.member: t for t in tables()}
    counts = {t.label: 0 for t in by_member.values() if layout and not layout.archived(t)}
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at commit, a broken
                # reference could not be traced to its line. Checked per statement instead.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        maps = ref_maps(using)
        for table in by_member.values():
            if table.replace:
                table.model._base_manager.using(using).all().delete()
        with closing(read_members(archive, layout.renames if layout else None)) as stream:
            next(stream)  # the manifest, read already
            for name, handle in stream:
                reader = Hashing(handle, member=name)
                if name in by_member:
                    table = by_member[name]
                    counts[table.label] = _load_table(
                        table, reader, maps, layout=layout, using=using
                    )
                    if table.model is ExportBatch:
                        _check_batch_files(members, using=using)
                else:
                    _load_file(name, reader, skip, written)
                want = members[name]
                if reader.size != want["size"] or reader.sha.hexdigest() != want["sha256"]:
                    raise BackupError(f"member {name} changed since it was verified")
        _reset_sequences(using)
        AuditEvent.objects.using(using).create(
            action="data.restored",
            target_type="backup",
            after={
                "archive": archive.name,
                "created_at": manifest["created_at"],
                "code_version": manifest.get("code_version", ""),
                "rows": sum(counts.values()),
                **({"layout": layout.name} if layout else {}),
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


def _load_file(member: str, reader: Hashing, skip: set[str], written: list[str]) -> None:
    name = storage_name(member)
    if name in skip:  # the same bytes are in storage already
        reader.drain()
        return
    saved = default_storage.save(name, File(reader, name=name))  # type: ignore[arg-type]
    written.append(saved)
    if saved != name:
        raise BackupError(f"member {member}: storage saved it as {saved}, not {name}")


def _load_table(
    table: Table,
    reader: Hashing,
    maps: dict[str, dict[Any, Any]],
    *,
    layout: Layout | None,
    using: str,
) -> int:
    fields = table.fields()
    keys = table.keys()
    wanted = set(layout.archived_keys(table) if layout else keys)
    per_insert = max(1, min(WRITE_CHUNK_ROWS, MAX_PARAMS // max(1, len(fields))))
    batch: list[list[Any]] = []
    lines: list[int] = []
    count = 0
    for number, raw in enumerate(reader, start=1):
        where = f"{table.member} line {number}"
        try:
            row = decode(raw)
        except ValueError as exc:
            raise BackupError(f"{where}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or set(row) != wanted:
            raise BackupError(f"{where}: expected the fields {', '.join(keys)}")
        if layout:
            row = layout.upgrade_row(table, row)
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
