"""Backups with object storage (an S3 API server on loopback): the batch files are read from
the bucket into the archive, the archive is uploaded beside them, and a restore on another
machine takes it from there and puts every file back byte for byte."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.backup.support import build_world, snapshot, stored_files

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_backup_goes_to_storage_and_restores_from_it(object_storage, media):
    build_world()
    before_rows, before_files = snapshot(), stored_files()
    assert len(before_files) == 6

    out = StringIO()
    call_command("backup_data", "--output", "nightly.tar.gz", "--to-storage", stdout=out)
    assert "uploaded to storage as backups/nightly.tar.gz" in out.getvalue()
    assert not [p for p in media.rglob("*") if p.is_file()]  # no local copy left behind

    call_command("flush", interactive=False, verbosity=0)
    object_storage.objects.filter(Prefix="exports/").delete()
    assert [o.key for o in object_storage.objects.all()] == ["backups/nightly.tar.gz"]

    call_command("restore_data", "--input", "nightly.tar.gz", "--from-storage", stdout=out)

    assert snapshot() == before_rows
    assert stored_files() == before_files


def test_it_refuses_to_overwrite_a_stored_backup_or_restore_a_missing_one(object_storage):
    build_world()
    call_command("backup_data", "--output", "b.tar.gz", "--to-storage", stdout=StringIO())
    with pytest.raises(CommandError, match="already holds backups/b.tar.gz"):
        call_command("backup_data", "--output", "b.tar.gz", "--to-storage", stdout=StringIO())
    with pytest.raises(CommandError, match="no backups/nope.tar.gz in storage"):
        call_command("restore_data", "--input", "nope.tar.gz", "--from-storage")
