"""Validation of ingest records. Every message names the field and says exactly what is wrong.

Hand-written rather than a schema library: this runs for every one of millions of rows, and
the messages are part of the contract (they end up in `line L: FIELD: MESSAGE`).
"""

import math
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings

from agents.models import FeedbackEvent
from core.slugs import SLUG_RE
from ingest.messages import messages_json
from ingest.messages import type_name as _type_name

MAX_METADATA_BYTES = 16 * 1024
FEEDBACK_KINDS = frozenset(FeedbackEvent.Kind.values)

# Short string fields and their column limits.
_SHORT = {"agent_version": 100, "conversation_id": 255, "intent": 100, "domain": 100}

FieldErrors = list[tuple[str, str]]


def _text(obj: dict, name: str, errors: FieldErrors, *, required: bool, limit: int) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            errors.append(
                (name, "is required" if name not in obj else "must be a string, got null")
            )
        return ""
    if not isinstance(value, str):
        errors.append((name, f"must be a string, got {_type_name(value)}"))
        return ""
    if len(value) > limit:
        errors.append((name, f"is {len(value):,} characters long; the limit is {limit:,}"))
    elif "\x00" in value:
        errors.append((name, "contains a NUL character (\\u0000), which cannot be stored"))
    return value


def _number(
    obj: dict, name: str, errors: FieldErrors, *, required: bool, low: float, high: float
) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            errors.append(
                (name, "is required" if name not in obj else "must be a number, got null")
            )
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        errors.append((name, f"must be a number, got {_type_name(value)}"))
        return None
    value = float(value)
    if not math.isfinite(value):
        errors.append(
            (
                name,
                f"must be a finite number, got {value!r}".replace("nan", "NaN").replace(
                    "inf", "Infinity"
                ),
            )
        )
        return None
    if not low <= value <= high:
        errors.append((name, f"must be between {low:g} and {high:g}, got {value:g}"))
        return None
    return value


def _bool(obj: dict, name: str, errors: FieldErrors) -> bool | None:
    value = obj.get(name)
    if value is None or isinstance(value, bool):
        return value
    errors.append((name, f"must be true, false or null, got {_type_name(value)}"))
    return None


def parse_timestamp(value: Any, name: str, errors: FieldErrors) -> datetime | None:
    """ISO 8601; a timestamp without an offset is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append((name, f"must be an ISO 8601 date-time string, got {_type_name(value)}"))
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors.append(
            (name, f"is not an ISO 8601 date-time: {value[:40]!r} (e.g. 2026-11-20T10:15:00Z)")
        )
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        # In UTC: PostgreSQL refuses offsets beyond ±15:59, which Python accepts.
        return parsed.astimezone(UTC)
    except OverflowError:
        errors.append((name, f"is out of range: {value[:40]!r}"))
        return None


def _slug(obj: dict, name: str, errors: FieldErrors) -> str:
    value = _text(obj, name, errors, required=True, limit=64)
    if value and not SLUG_RE.match(value):
        errors.append(
            (name, f"must be a slug (lowercase letters, digits, '-' or '_'), got {value[:64]!r}")
        )
    return value


def _external_id(obj: dict, errors: FieldErrors) -> str:
    value = _text(obj, "external_id", errors, required=True, limit=255)
    if "external_id" in obj and isinstance(obj["external_id"], str) and not value.strip():
        errors.append(("external_id", "must not be empty"))
    return value


def _metadata(value: Any, errors: FieldErrors) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, dict):
        errors.append(("metadata", f"must be an object, got {_type_name(value)}"))
        return "{}"
    try:
        encoded = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        errors.append(("metadata", "must be plain JSON (finite numbers, UTF-8 strings)"))
        return "{}"
    if len(encoded) > MAX_METADATA_BYTES:
        errors.append(
            ("metadata", f"is {len(encoded):,} bytes as JSON; the limit is {MAX_METADATA_BYTES:,}")
        )
    elif b"\\u0000" in encoded:
        errors.append(("metadata", "contains a NUL character (\\u0000), which cannot be stored"))
    return encoded.decode()


def validate_interaction(obj: Any) -> tuple[dict | None, FieldErrors]:
    """Returns (clean record, []) or (None, errors). The clean record has every column set,
    `context` / `steps` / `metadata` as JSON text (the messages normalised: ingest/messages.py)
    and `created_at` None when the source gave none."""
    if not isinstance(obj, dict):
        return None, [("record", f"must be a JSON object, got {_type_name(obj)}")]
    errors: FieldErrors = []
    limit = settings.INGEST_MAX_TEXT_CHARS
    external_id = _external_id(obj, errors)
    agent = _slug(obj, "agent", errors)
    input_ = _text(obj, "input", errors, required=True, limit=limit)
    output = _text(obj, "output", errors, required=True, limit=limit)
    confidence = _number(obj, "confidence", errors, required=True, low=0.0, high=1.0)
    short = {
        name: _text(obj, name, errors, required=False, limit=size) for name, size in _SHORT.items()
    }
    context = messages_json(obj.get("context"), "context", errors, limit=limit)
    steps = messages_json(obj.get("steps"), "steps", errors, limit=limit)
    resolved = _bool(obj, "resolved", errors)
    escalated = _bool(obj, "escalated", errors)
    sentiment = _number(obj, "sentiment", errors, required=False, low=-1.0, high=1.0)
    turns = obj.get("turns")
    if turns is not None and (
        isinstance(turns, bool) or not isinstance(turns, int) or not 0 <= turns <= 100_000
    ):
        if isinstance(turns, int) and not isinstance(turns, bool):
            errors.append(("turns", f"must be between 0 and 100000, got {turns}"))
        else:
            errors.append(("turns", f"must be a whole number, got {_type_name(turns)}"))
        turns = None
    metadata = _metadata(obj.get("metadata"), errors)
    created_at = parse_timestamp(obj.get("created_at"), "created_at", errors)
    if errors:
        return None, errors
    return {
        "external_id": external_id,
        "agent": agent,
        "input": input_,
        "output": output,
        "confidence": confidence,
        **short,
        "context": context,
        "steps": steps,
        "resolved": resolved,
        "escalated": escalated,
        "sentiment": sentiment,
        "turns": turns,
        "metadata": metadata,
        "created_at": created_at,
    }, []


def validate_feedback(obj: Any) -> tuple[dict | None, FieldErrors]:
    if not isinstance(obj, dict):
        return None, [("record", f"must be a JSON object, got {_type_name(obj)}")]
    errors: FieldErrors = []
    external_id = _external_id(obj, errors)
    agent = _slug(obj, "agent", errors)
    kind: str = obj.get("kind") or ""
    if not kind:
        errors.append(("kind", "is required"))
    elif not isinstance(kind, str) or kind not in FEEDBACK_KINDS:  # a list is unhashable
        errors.append(
            ("kind", f"must be one of {', '.join(sorted(FEEDBACK_KINDS))}, got {str(kind)[:40]!r}")
        )
    item_ref = _text(obj, "item_ref", errors, required=False, limit=255)
    value = _number(obj, "value", errors, required=False, low=-1e12, high=1e12)
    created_at = parse_timestamp(obj.get("created_at"), "created_at", errors)
    if errors:
        return None, errors
    return {
        "external_id": external_id,
        "agent": agent,
        "kind": kind,
        "item_ref": item_ref,
        "value": value,
        "created_at": created_at,
        "dedupe_key": FeedbackEvent.make_dedupe_key(
            # The parsed instant, so "…Z" and "…+00:00" are the same event.
            agent,
            external_id,
            kind,
            item_ref,
            value,
            created_at.astimezone(UTC).isoformat() if created_at else "",
        ),
    }, []
