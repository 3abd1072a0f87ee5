"""The ingest API: interactions and feedback as JSON, and OpenTelemetry traces (OTLP/HTTP)."""

from typing import Any

import orjson
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema

from accounts.models import Role
from accounts.permissions import RoleBearer
from core.limits import JsonRejected, TokenRateThrottle, check_shape, error_responses
from ingest.messages import CONTEXT_SCHEMA, STEPS_SCHEMA
from ingest.otlp import OtlpError, body_decompress, spans_decode
from ingest.readers import parse_record
from ingest.services import (
    IngestResult,
    TraceResult,
    feedback_ingest,
    interactions_ingest,
    traces_ingest,
)

router = Router(tags=["ingest"])
ingest_auth = RoleBearer(Role.AGENT, Role.ADMIN)
# Per API token (INGEST_RATE_LIMIT_PER_MINUTE): one runaway pipeline cannot starve the rest.
ingest_throttle = TokenRateThrottle("INGEST_RATE_LIMIT_PER_MINUTE", scope="ingest")


class ItemError(Schema):
    index: int
    field: str
    message: str


class IngestOut(Schema):
    created: int
    duplicates: int
    errors: list[ItemError]


INGEST_RESPONSES = {200: IngestOut, **error_responses(400, 401, 403, 413, 429)}


_INTERACTION_SCHEMA = {
    "type": "object",
    "required": ["external_id", "agent", "input", "output", "confidence"],
    "properties": {
        "external_id": {
            "type": "string",
            "maxLength": 255,
            "description": "Unique per agent: the idempotency key.",
        },
        "agent": {
            "type": "string",
            "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
            "description": "Agent slug; unknown agents are created. A token limited to "
            "some agents may write only for those.",
        },
        "agent_version": {"type": ["string", "null"], "maxLength": 100},
        "conversation_id": {"type": ["string", "null"], "maxLength": 255},
        "input": {"type": "string"},
        "context": CONTEXT_SCHEMA,
        "steps": STEPS_SCHEMA,
        "output": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "intent": {"type": ["string", "null"], "maxLength": 100},
        "domain": {"type": ["string", "null"], "maxLength": 100},
        "resolved": {"type": ["boolean", "null"]},
        "escalated": {"type": ["boolean", "null"]},
        "sentiment": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
        "turns": {"type": ["integer", "null"], "minimum": 0},
        "metadata": {"type": ["object", "null"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

_FEEDBACK_SCHEMA = {
    "type": "object",
    "required": ["agent", "external_id", "kind"],
    "properties": {
        "agent": {"type": "string"},
        "external_id": {"type": "string", "maxLength": 255},
        "kind": {
            "type": "string",
            "enum": ["clicked", "skipped", "thumbs_up", "thumbs_down", "resolved", "escalated"],
        },
        "item_ref": {"type": ["string", "null"], "maxLength": 255},
        "value": {"type": ["number", "null"]},
        "created_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _array_body(item_schema: dict) -> dict:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "maxItems": settings.INGEST_MAX_ITEMS_PER_REQUEST,
                        "items": item_schema,
                    }
                }
            },
        }
    }


def _json(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(orjson.dumps(payload), status=status, content_type="application/json")


def _ingest(request: HttpRequest, ingest) -> HttpResponse:
    try:
        body = request.body
    except RequestDataTooBig:
        return _json(
            413, {"detail": f"body larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes"}
        )
    try:
        items = parse_record(body)
    except ValueError as exc:
        return _json(400, {"detail": f"body is {exc}"})
    if not isinstance(items, list):
        return _json(400, {"detail": "body must be a JSON array of objects"})
    limit = settings.INGEST_MAX_ITEMS_PER_REQUEST
    if len(items) > limit:
        return _json(
            413, {"detail": f"{len(items):,} items in one request; the limit is {limit:,}"}
        )
    try:
        check_shape(items, root="items", raw=body)
    except JsonRejected as exc:
        return _json(400, {"detail": str(exc)})
    token = getattr(request, "api_token", None)  # set by RoleBearer
    result: IngestResult = ingest(
        records=enumerate(items),
        actor_id=request.user.pk,
        source="api",
        agent_scope=token.agent_scope if token is not None else None,
    )
    return _json(
        200,
        {
            "created": result.created,
            "duplicates": result.duplicates,
            "errors": [
                {"index": e.position, "field": e.field, "message": e.message} for e in result.errors
            ],
        },
    )


@router.post(
    "/interactions",
    auth=ingest_auth,
    throttle=[ingest_throttle],
    response=INGEST_RESPONSES,
    openapi_extra=_array_body(_INTERACTION_SCHEMA),
    summary="Ingest interactions (idempotent by agent + external_id)",
)
def post_interactions(request: HttpRequest):
    """Stores up to 5,000 interactions; valid items are stored even when others fail, and
    each error names the item's index, the field and what is wrong. A body over the size
    limit is 413; past the per-token rate limit the answer is 429 with `Retry-After`."""
    return _ingest(request, interactions_ingest)


@router.post(
    "/feedback",
    auth=ingest_auth,
    throttle=[ingest_throttle],
    response=INGEST_RESPONSES,
    openapi_extra=_array_body(_FEEDBACK_SCHEMA),
    summary="Ingest feedback events",
)
def post_feedback(request: HttpRequest):
    """Stores feedback events on known interactions; `thumbs_down` and `escalated` queue the
    interaction for review. Same limits as `POST /interactions` (413, 429)."""
    return _ingest(request, feedback_ingest)


# --- OpenTelemetry (OTLP/HTTP traces) -------------------------------------------------------

_OTLP_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-protobuf": {
                "schema": {"type": "string", "format": "binary"},
            },
            # OTLP's JSON encoding of the same message; `{}` is a valid export of no spans.
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "resourceSpans": {"type": ["array", "null"], "items": {"type": "object"}}
                    },
                }
            },
        },
    },
    "responses": {
        200: {
            "description": "ExportTraceServiceResponse (protobuf or JSON, as sent); "
            "`partial_success` names the rejected spans and why",
        }
    },
}


def _is_protobuf(request: HttpRequest) -> bool:
    kind = (request.content_type or "").lower()
    return kind in ("application/x-protobuf", "application/protobuf")


def _otlp_status(request: HttpRequest, status: int, message: str) -> HttpResponse:
    """An OTLP error: a google.rpc.Status (code 3, INVALID_ARGUMENT, or 8, RESOURCE_EXHAUSTED
    for 413) in the request's encoding."""
    code = 8 if status == 413 else 3
    if _is_protobuf(request):
        text = message.encode()
        body = b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text
        return HttpResponse(body, status=status, content_type="application/x-protobuf")
    # `detail` as well: the API's one error body (core.limits.ErrorOut) for non-OTLP clients.
    return _json(status, {"code": code, "message": message, "detail": message})


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _otlp_answer(request: HttpRequest, result: TraceResult) -> HttpResponse:
    notes = []
    if result.rejected:
        shown = "; ".join(f"span {key}: {why}" for key, why in result.rejected[:20])
        more = len(result.rejected) - 20
        notes.append(
            f"{len(result.rejected)} rejected: {shown}" + (f"; and {more} more" if more > 0 else "")
        )
    if result.ignored:
        notes.append(f"{result.ignored} spans without gen_ai attributes ignored")
    message = ". ".join(notes)
    if _is_protobuf(request):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        answer = ExportTraceServiceResponse()
        if message:
            answer.partial_success.rejected_spans = len(result.rejected)
            answer.partial_success.error_message = message
        return HttpResponse(
            answer.SerializeToString(), status=200, content_type="application/x-protobuf"
        )
    payload: dict[str, Any] = {}
    if message:
        payload["partialSuccess"] = {
            "rejectedSpans": len(result.rejected),
            "errorMessage": message,
        }
    return _json(200, payload)


@router.post(
    "/otel/v1/traces",
    auth=ingest_auth,
    throttle=[ingest_throttle],
    response=error_responses(400, 401, 403, 413, 415, 429),
    openapi_extra=_OTLP_BODY,
    summary="OpenTelemetry traces (OTLP/HTTP): GenAI spans become interactions",
)
def post_traces(request: HttpRequest):
    """Point an OTLP/HTTP exporter here: `OTEL_EXPORTER_OTLP_ENDPOINT=<base>/api/v1/otel` and
    `OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer <token>`. Protobuf or JSON, gzip or not;
    the same roles, size and rate limits as `POST /interactions`. Spans that follow the
    GenAI semantic conventions become interactions (idempotent on trace and span id); other
    spans are ignored and counted; rejected spans are named in `partial_success`."""
    try:
        body = request.body
    except RequestDataTooBig:
        return _otlp_status(
            request, 413, f"body larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes"
        )
    try:
        raw = body_decompress(
            body, request.headers.get("Content-Encoding", ""), settings.INGEST_MAX_BODY_BYTES
        )
        spans = spans_decode(raw, request.content_type or "")
    except OtlpError as exc:
        return _otlp_status(request, exc.http_status, str(exc))
    limit = settings.INGEST_MAX_ITEMS_PER_REQUEST
    if len(spans) > limit:
        return _otlp_status(
            request, 413, f"{len(spans):,} spans in one request; the limit is {limit:,}"
        )
    token = getattr(request, "api_token", None)
    result = traces_ingest(
        spans=spans,
        actor_id=request.user.pk,
        agent_scope=token.agent_scope if token is not None else None,
    )
    return _otlp_answer(request, result)
