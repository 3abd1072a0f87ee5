"""Settings for several machines (issue 14): a pooler, a replica, object storage."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import database_from_url, storage_from_url
from tests.config.test_settings import _settings_in_subprocess


def test_a_pooled_url_keeps_no_session_state():
    db = database_from_url("postgres://app@pgbouncer:6432/coachdesk", pooled=True)
    assert db["CONN_MAX_AGE"] == 0  # the pooler keeps the server connections
    assert db["OPTIONS"] == {"prepare_threshold": None}  # no startup options, nothing prepared
    assert db["CONN_HEALTH_CHECKS"] is False
    direct = database_from_url("postgres://app@db:5432/coachdesk", conn_max_age=0)
    assert direct["CONN_MAX_AGE"] == 0
    assert direct["OPTIONS"] == {"prepare_threshold": 5, "options": "-c jit=off"}


def test_a_pooled_url_refuses_startup_options_it_could_not_forward():
    with pytest.raises(ImproperlyConfigured, match="ALTER ROLE"):
        database_from_url("postgres://app@pgbouncer/c?options=-c%20jit%3Doff", pooled=True)


def test_it_reads_a_storage_url():
    storage = storage_from_url(
        "s3://coachdesk-files/prod/batches?endpoint_url=http://minio:9000&region_name=eu-1"
        "&addressing_style=path&use_ssl=false"
    )
    assert storage == {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "coachdesk-files",
            "location": "prod/batches",
            "file_overwrite": False,
            "default_acl": None,
            "signature_version": "s3v4",
            "endpoint_url": "http://minio:9000",
            "region_name": "eu-1",
            "addressing_style": "path",
            "use_ssl": False,
        },
    }


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("gs://bucket", "scheme 'gs' is not supported"),
        ("s3:///prefix", "names no bucket"),
        ("s3://key:secret@bucket", "must not carry credentials"),
        ("s3://bucket?endpoint=x&acl=y", "unknown option(s) acl, endpoint"),
    ],
)
def test_it_refuses_a_bad_storage_url(url, message):
    with pytest.raises(ImproperlyConfigured) as caught:
        storage_from_url(url)
    assert message in str(caught.value)


def test_the_environment_chooses_pooler_replica_and_storage():
    done = _settings_in_subprocess(
        {
            "DATABASE_URL": "postgres://app@127.0.0.1:6432/c",
            "DATABASE_POOLER": "transaction",
            "DATABASE_REPLICA_URL": "postgres://app@127.0.0.1:5433/c",
            "STORAGE_URL": "s3://files?endpoint_url=http://127.0.0.1:9000",
            "SECRET_KEY": "s",
        },
        "settings.DATABASES['default']['CONN_MAX_AGE'], "
        "settings.DATABASES['replica']['PORT'], settings.DATABASES['replica']['TEST']['MIRROR'], "
        "settings.STORAGES['default']['BACKEND'], settings.STORAGES['default']['OPTIONS']"
        "['bucket_name']",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "(0, '5433', 'default', 'storages.backends.s3.S3Storage', 'files')"
    )


def test_it_refuses_an_unknown_pooler_mode():
    done = _settings_in_subprocess(
        {
            "DATABASE_URL": "postgres://x@127.0.0.1/y",
            "SECRET_KEY": "s",
            "DATABASE_POOLER": "session",
        },
        "settings.DATABASES",
    )
    assert done.returncode != 0
    assert "DATABASE_POOLER='session': use 'transaction'" in done.stderr


def test_the_aws_variables_choose_object_storage_too():
    done = _settings_in_subprocess(
        {
            "DATABASE_URL": "postgres://x@127.0.0.1/y",
            "SECRET_KEY": "s",
            "AWS_STORAGE_BUCKET_NAME": "team-files",
            "AWS_S3_REGION_NAME": "eu-central-1",
        },
        "settings.STORAGES['default']['OPTIONS']['bucket_name'], "
        "settings.STORAGES['default']['OPTIONS']['region_name']",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('team-files', 'eu-central-1')"
