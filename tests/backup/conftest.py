"""Fixtures of the backup tests: storage in a temporary folder, the world, archives of it."""

from types import SimpleNamespace

import pytest
from django.test import override_settings

from retraining.models import ExportBatch
from tests.backup.support import backup, build_world, wipe


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    root = tmp_path / "media"
    settings.MEDIA_ROOT = root
    settings.EXPORT_TMP_DIR = root / ".export-tmp"
    return root


@pytest.fixture
def world():
    return build_world()


@pytest.fixture
def archive(world, tmp_path, media):
    path = tmp_path / "backup.tar.gz"
    backup(path)
    return path


@pytest.fixture(scope="module")
def saved(django_db_setup, django_db_blocker, tmp_path_factory):
    """One archive of the world, made once for the tests that only read it; the database
    and storage are wiped afterwards, as a fresh target."""
    folder = tmp_path_factory.mktemp("saved")
    media = folder / "media"
    with (
        django_db_blocker.unblock(),
        override_settings(MEDIA_ROOT=media, EXPORT_TMP_DIR=media / ".export-tmp"),
    ):
        made = build_world()
        backup(folder / "backup.tar.gz")
        batches = {b.format: b for b in ExportBatch.objects.exclude(file="")}
        wipe(media)
    return SimpleNamespace(path=folder / "backup.tar.gz", secret=made["secret"], batches=batches)
