"""Batch files in object storage (an S3 API server on loopback): built into the bucket, never
onto local disk, downloaded as a stream or through a short presigned address."""

import hashlib

import httpx
import pytest

pytestmark = pytest.mark.postgres


def objects(bucket) -> dict[str, bytes]:
    return {o.key: o.get()["Body"].read() for o in bucket.objects.all()}


def test_a_build_writes_the_file_and_its_manifest_to_the_bucket(
    object_storage, agent, decide, build, media
):
    for n in range(3):
        decide(agent, f"question {n}", f"answer {n}")
    batch = build(agent, "jsonl")

    stored = objects(object_storage)
    assert sorted(stored) == [batch.file.name, batch.manifest_file.name]
    assert batch.file.name.startswith("exports/support-bot/batch-")
    assert hashlib.sha256(stored[batch.file.name]).hexdigest() == batch.sha256
    assert len(stored[batch.file.name]) == batch.file_size
    assert not [p for p in media.rglob("*") if p.is_file()]  # nothing left on this machine


def test_the_download_streams_the_object_with_its_checksum(
    object_storage, agent, decide, build, ml, client
):
    decide(agent, "Where is my order?", "It ships today.")
    batch = build(agent, "jsonl")
    client.force_login(ml)

    response = client.get(f"/exports/{batch.pk}/download/")

    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == batch.sha256 == response["X-Content-SHA256"]
    assert response["Content-Length"] == str(len(body))


def test_presigned_downloads_redirect_to_a_short_lived_address(
    object_storage, agent, decide, build, ml, client, settings
):
    settings.STORAGE_PRESIGNED_DOWNLOADS = True
    settings.STORAGE_PRESIGNED_SECONDS = 30
    decide(agent, "Where is my order?", "It ships today.")
    batch = build(agent, "csv")
    client.force_login(ml)

    response = client.get(f"/exports/{batch.pk}/download/")

    assert response.status_code == 302
    assert response["X-Content-SHA256"] == batch.sha256
    address = response["Location"]
    assert "X-Amz-Expires=30" in address and "X-Amz-Signature=" in address
    fetched = httpx.get(address)
    assert fetched.status_code == 200
    assert hashlib.sha256(fetched.content).hexdigest() == batch.sha256
    assert fetched.headers["content-disposition"].startswith("attachment; filename=")
    assert fetched.headers["content-type"].startswith("text/csv")


def test_the_role_is_checked_before_any_address_is_made(
    object_storage, agent, decide, build, reviewer, client, settings
):
    settings.STORAGE_PRESIGNED_DOWNLOADS = True
    decide(agent, "Q", "A")
    batch = build(agent, "jsonl")
    client.force_login(reviewer)

    response = client.get(f"/exports/{batch.pk}/download/")

    assert response.status_code == 403
    assert "Location" not in response


def test_a_big_file_is_uploaded_in_parts(object_storage, tmp_path):
    """What `build.store` does with a finished file above boto3's 8 MB threshold: a
    multipart upload (the object's ETag then ends in -<parts>), read back byte for byte."""
    from django.core.files.storage import default_storage

    from retraining.build import _LocalFile

    path = tmp_path / "big.jsonl"
    block = hashlib.sha256(b"seed").hexdigest().encode() * 2048  # 128 KiB
    path.write_bytes(block * 80)  # 10 MiB
    with open(path, "rb") as local:
        name = default_storage.save("exports/t/big.jsonl", _LocalFile(local))

    stored = object_storage.Object(name)
    assert stored.e_tag.strip('"').endswith("-2")  # two parts of 8 MiB at most
    assert stored.content_length == path.stat().st_size
    assert (
        hashlib.sha256(stored.get()["Body"].read()).hexdigest()
        == hashlib.sha256(path.read_bytes()).hexdigest()
    )
