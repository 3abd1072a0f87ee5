"""Where files live: the local folder (MEDIA_ROOT, the embedded default) or object storage
through django-storages' S3 backend (AWS S3, MinIO, R2 and the like), chosen by
`STORAGE_URL` (see config/env.py `storage_from_url`) or the usual `AWS_*` settings.

Files are always reached by their storage name through Django's `default_storage`; these
helpers add the two things object storage does differently: reading a stored file as a
stream (django-storages' `open()` first copies the whole object to a temporary file), and
handing the browser a short-lived presigned address instead of the bytes.
"""

from __future__ import annotations

from typing import IO, Any

from django.conf import settings
from django.core.files.storage import default_storage


def is_object_storage() -> bool:
    return hasattr(default_storage, "bucket_name")


def open_stream(name: str) -> IO[bytes]:
    """The stored file `name`, opened for reading from its first byte: a local file, or the
    body of the object's GET streamed as it is read (nothing copied to local disk)."""
    handle: Any = default_storage.open(name, "rb")
    obj = getattr(handle, "obj", None)  # django-storages' S3 file: its boto3 Object
    if obj is None:
        return handle
    return obj.get()["Body"]


def presigned_url(name: str, *, filename: str, content_type: str) -> str | None:
    """A short-lived address of the stored file that downloads it as `filename`, when files
    are in object storage and STORAGE_PRESIGNED_DOWNLOADS is on; else None (the app streams
    the file itself). The role check happens before the address is made; the address is
    valid for STORAGE_PRESIGNED_SECONDS."""
    if not (settings.STORAGE_PRESIGNED_DOWNLOADS and is_object_storage()):
        return None
    safe = filename.replace('"', "")
    return default_storage.url(  # type: ignore[call-arg]
        name,
        parameters={
            "ResponseContentDisposition": f'attachment; filename="{safe}"',
            "ResponseContentType": content_type,
        },
        expire=settings.STORAGE_PRESIGNED_SECONDS,
    )
