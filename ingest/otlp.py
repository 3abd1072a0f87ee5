"""OTLP/HTTP trace export bodies, decoded: what a standard OpenTelemetry exporter sends to
`POST /api/v1/otel/v1/traces` (protobuf as `application/x-protobuf`, or the OTLP JSON
encoding as `application/json`, where trace and span ids are hex), optionally gzip-compressed.
The decompressed size is bounded before anything is parsed. `ingest.genai` maps the spans.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson


class OtlpError(ValueError):
    """A request the endpoint cannot take at all: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = status


@dataclass
class Span:
    trace_id: str
    span_id: str
    name: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    end_ns: int = 0

    @property
    def key(self) -> str:
        return f"{self.trace_id}:{self.span_id}"


# --- Decoding -------------------------------------------------------------------------------


def body_decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body without its Content-Encoding (identity or gzip), at most `limit` bytes."""
    encoding = (encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise OtlpError(415, f"Content-Encoding {encoding!r} is not supported (use gzip)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpError(400, f"the gzip body is corrupt: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise OtlpError(413, f"the body is over {limit:,} bytes once decompressed")
    if not inflater.eof:
        raise OtlpError(400, "the gzip body is truncated")
    return out


def spans_decode(body: bytes, content_type: str) -> list[Span]:
    """The spans of an ExportTraceServiceRequest in protobuf or OTLP JSON."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ("application/x-protobuf", "application/protobuf"):
        return list(_from_protobuf(body))
    if kind == "application/json":
        return list(_from_json(body))
    raise OtlpError(
        415, f"Content-Type {kind or '(none)'!r}: send application/x-protobuf or application/json"
    )


def _from_protobuf(body: bytes) -> Iterator[Span]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpError(400, f"the body is not an OTLP protobuf trace export: {exc}") from None
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield Span(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    name=span.name,
                    attributes=_pb_attributes(span.attributes),
                    resource=resource,
                    events=[(e.name, _pb_attributes(e.attributes)) for e in span.events],
                    end_ns=span.end_time_unix_nano,
                )


def _pb_attributes(pairs) -> dict[str, Any]:
    return {pair.key: _pb_value(pair.value) for pair in pairs}


# Attribute values nested deeper than this are dropped (None): GenAI attributes are flat or
# JSON text, and each level costs a Python call per value (bench/free_text.py).
MAX_VALUE_DEPTH = 8


def _pb_value(value, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind is None or (depth >= MAX_VALUE_DEPTH and kind in ("array_value", "kvlist_value")):
        return None
    if kind == "array_value":
        return [_pb_value(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind)


def _from_json(body: bytes) -> Iterator[Span]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise OtlpError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise OtlpError(400, "the body must be a JSON object with resourceSpans")
    for r, resource_spans in enumerate(_list(data, "resourceSpans", "")):
        where = f"resourceSpans[{r}]"
        if not isinstance(resource_spans, dict):
            raise OtlpError(400, f"{where} must be an object")
        resource = _json_attributes(
            _dict(resource_spans, "resource", where).get("attributes"), where
        )
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", where)):
            inner = f"{where}.scopeSpans[{s}]"
            if not isinstance(scope_spans, dict):
                raise OtlpError(400, f"{inner} must be an object")
            for n, span in enumerate(_list(scope_spans, "spans", inner)):
                at = f"{inner}.spans[{n}]"
                if not isinstance(span, dict):
                    raise OtlpError(400, f"{at} must be an object")
                yield Span(
                    trace_id=_hex_id(span.get("traceId"), 32, f"{at}.traceId"),
                    span_id=_hex_id(span.get("spanId"), 16, f"{at}.spanId"),
                    name=str(span.get("name") or ""),
                    attributes=_json_attributes(span.get("attributes"), at),
                    resource=resource,
                    events=[
                        (str(e.get("name") or ""), _json_attributes(e.get("attributes"), at))
                        for e in _list(span, "events", at)
                        if isinstance(e, dict)
                    ],
                    end_ns=_int(span.get("endTimeUnixNano")),
                )


def _list(obj: Any, key: str, where: str) -> list:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpError(400, f"{where + '.' if where else ''}{key} must be an array")
    return value


def _dict(obj: Any, key: str, where: str) -> dict:
    value = obj.get(key) if isinstance(obj, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OtlpError(400, f"{where}.{key} must be an object")
    return value


def _hex_id(value: Any, length: int, where: str) -> str:
    text = str(value or "").lower()
    if len(text) != length or any(c not in "0123456789abcdef" for c in text):
        raise OtlpError(400, f"{where} must be {length} hex digits, got {str(value)[:40]!r}")
    return text


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _json_attributes(pairs: Any, where: str) -> dict[str, Any]:
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise OtlpError(400, f"{where}.attributes must be an array of {{key, value}}")
    return {
        str(pair.get("key")): _json_value(pair.get("value"))
        for pair in pairs
        if isinstance(pair, dict)
    }


def _json_value(value: Any, depth: int = 0) -> Any:
    if not isinstance(value, dict) or not value:
        return None
    kind, inner = next(iter(value.items()))
    if depth >= MAX_VALUE_DEPTH and kind in ("arrayValue", "kvlistValue"):
        return None
    if not isinstance(inner, dict) and kind in ("arrayValue", "kvlistValue"):
        return None
    if kind == "arrayValue":
        return [_json_value(v, depth + 1) for v in (inner or {}).get("values") or ()]
    if kind == "kvlistValue":
        return {
            str(kv.get("key")): _json_value(kv.get("value"), depth + 1)
            for kv in (inner or {}).get("values") or ()
            if isinstance(kv, dict)
        }
    if kind == "intValue":
        return _int(inner)
    return inner
