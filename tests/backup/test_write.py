"""backup_data: the archive it writes (manifest, checksums), its refusal to overwrite, its
summary. The world it archives is built in tests/backup/support.py."""

import hashlib
import json
import tarfile

import pytest
from django.core.management import CommandError

from retraining.models import BatchPair, TrainingPair
from reviews.models import Review
from tests.backup.support import backup

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_it_writes_a_manifest_with_migrations_counts_and_checksums(world, archive):
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder

    with tarfile.open(archive, "r:gz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
        digests = {n: hashlib.sha256(tar.extractfile(n).read()).hexdigest() for n in names[1:]}

    applied = MigrationRecorder(connection).applied_migrations()
    assert names[0] == "manifest.json"
    assert manifest["format_version"] == 1
    assert manifest["migrations"]["reviews"]["latest"] == max(
        name for app, name in applied if app == "reviews"
    )
    assert manifest["counts"]["reviews.review"] == Review.objects.count()
    assert manifest["counts"]["retraining.batchpair"] == BatchPair.objects.count()
    assert {m["name"]: m["sha256"] for m in manifest["members"]} == digests


def test_it_refuses_to_overwrite_an_existing_archive(saved):
    size = saved.path.stat().st_size

    with pytest.raises(CommandError, match="already exists"):
        backup(saved.path)

    assert saved.path.stat().st_size == size


def test_it_prints_a_one_line_summary_of_the_backup(world, tmp_path):
    output = backup(tmp_path / "b.tar.gz")

    assert output.count("\n") == 1
    assert output.startswith(f"backed up to {tmp_path / 'b.tar.gz'}: 6 users, 2 agents, ")
    assert f"{Review.objects.count()} reviews, {TrainingPair.objects.count()} training pairs" in (
        output
    )
    assert "4 batches, 6 batch files" in output
