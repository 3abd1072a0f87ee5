"""Limits on what a client may send, and the API's one error body.

- `RequestSizeLimitMiddleware`: a body larger than its path allows is refused (413) from the
  Content-Length header, before a byte of it is read.
- `load_json` / `LimitedJsonParser`: JSON bodies nested too deeply or holding a huge string
  are refused (400) with the path of the offending value, e.g. `items[3].metadata.a.b`.
- `TokenRateThrottle`: N requests per API token in any one-minute span (a sliding window in
  the cache); it fails open when the cache is down, so ingest keeps working through a Redis outage.
- `ErrorOut` / `error_responses`: every API error is `{"detail": ..., "errors"?: {...}}`.
"""

import hashlib
import logging
import math
import threading
import time
from typing import Any

import orjson
from django.conf import settings
from django.core.cache import caches
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.utils.datastructures import MultiValueDict
from ninja import Schema
from ninja.errors import HttpError
from ninja.parser import Parser
from ninja.throttling import BaseThrottle

log = logging.getLogger(__name__)

# The bulk ingest endpoints (DESIGN.md: up to 5,000 items a request) get the larger limit.
INGEST_PATHS = frozenset({"/api/v1/interactions", "/api/v1/feedback", "/api/v1/otel/v1/traces"})
_WARN_EVERY = 60.0


# --- The API's error body ------------------------------------------------------------------


class ErrorOut(Schema):
    """Every error of the API. `errors` maps a field (dotted path) to what is wrong with it."""

    detail: str
    errors: dict[str, str] | None = None


def error_responses(*codes: int) -> dict[int, type[ErrorOut]]:
    """`response={200: Out, **error_responses(400, 401, 403)}` in a route decorator."""
    return dict.fromkeys(codes, ErrorOut)


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def _refuse(request: HttpRequest, status: int, detail: str) -> HttpResponse:
    if is_api(request):
        return HttpResponse(
            orjson.dumps({"detail": detail}), status=status, content_type="application/json"
        )
    title = {400: "Bad request", 411: "Length required", 413: "Request too large"}[status]
    html = f"<!doctype html>\n<title>{title}</title>\n<h1>{title}</h1>\n<p>{detail}</p>\n"
    return HttpResponse(html, status=status, content_type="text/html; charset=utf-8")


# --- Body size ------------------------------------------------------------------------------


def body_limit(path: str, *, form: bool = False) -> int:
    """The largest body, in bytes, a request to `path` may send (`form`: a page's
    url-encoded form, which costs far more CPU per byte to decode than JSON)."""
    if path.rstrip("/") in INGEST_PATHS:
        return settings.INGEST_MAX_BODY_BYTES
    if form and not path.startswith("/api/"):
        return min(settings.FORM_MAX_BODY_BYTES, settings.MAX_BODY_BYTES)
    return settings.MAX_BODY_BYTES


class RequestSizeLimitMiddleware:
    """Refuses a body larger than its path allows (413) from its Content-Length alone.

    A malformed Content-Length is a 400. A chunked body without Content-Length is a 411 under
    WSGI: Django reads no bytes of such a body (it would look empty, and a JSON body would
    then be reported as invalid, which misleads). Under ASGI Django spools it and applies
    DATA_UPLOAD_MAX_MEMORY_SIZE when the body is read.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        refused = self.check(request)
        return refused if refused is not None else self.get_response(request)

    def check(self, request: HttpRequest) -> HttpResponse | None:
        if _has_nul(request.META.get("QUERY_STRING", "")):
            return _refuse(request, 400, "the query string contains a NUL character (%00)")
        raw = request.META.get("CONTENT_LENGTH")
        if raw in (None, ""):
            chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
            if chunked and isinstance(request, WSGIRequest):
                return _refuse(
                    request, 411, "send the body with a Content-Length header (not chunked)"
                )
            return None
        text = str(raw).strip()
        if not text.isascii() or not text.isdigit():
            return _refuse(request, 400, "the Content-Length header is not a number of bytes")
        limit = body_limit(request.path_info, form=_is_form(request))
        size = int(text)
        if size > limit:
            return _refuse(
                request, 413, f"the body is {size:,} bytes; the limit here is {limit:,} bytes"
            )
        if size and not is_api(request) and _is_form(request) and _has_nul(request.body):
            # Pages hand form values to the ORM, and PostgreSQL cannot store NUL in text.
            return _refuse(request, 400, "the form contains a NUL character (%00)")
        return None


def _has_nul(raw: str | bytes) -> bool:
    """NUL, raw or percent-encoded: PostgreSQL text cannot hold it, so no form value or query
    parameter may carry one (JSON bodies are checked by their parser)."""
    if isinstance(raw, bytes):
        return b"\x00" in raw or b"%00" in raw
    return "\x00" in raw or "%00" in raw


def _is_form(request: HttpRequest) -> bool:
    # Multipart bodies may carry binary files, where NUL is legitimate (Django's form fields
    # refuse NUL in their text values themselves).
    return request.content_type == "application/x-www-form-urlencoded"


# --- JSON shape -----------------------------------------------------------------------------


class JsonRejected(ValueError):
    """A JSON body that is malformed, nested too deeply or holds too long a string."""


def _path(parts: tuple) -> str:
    out = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(f".{part}" if out else str(part))
    return "".join(out)


def check_shape(
    value: Any, *, root: str, refuse_nul: bool = False, raw: bytes | None = None
) -> None:
    """Raises JsonRejected naming the first value nested deeper than JSON_MAX_DEPTH (the
    root array or object is level 1), the first string (or key) longer than
    JSON_MAX_STRING_CHARS and, with `refuse_nul`, the first string holding a NUL character
    (PostgreSQL cannot store it). `raw` is the JSON text `value` was decoded from, if known.

    Fast: a value whose JSON text is short enough and has few enough brackets cannot break a
    limit, and that is checked on the text in C (orjson, bytes.count). Only a value that
    might break one is walked, iteratively (no recursion limit), to name the offending path.
    On a bulk ingest body that is one short text per item instead of a walk of every value.
    """
    if raw is not None and _fits(raw, 1, refuse_nul):
        return
    if raw is not None and _max_depth(raw) <= settings.JSON_MAX_DEPTH:
        # Nothing is nested too deeply anywhere (an upper bound from the text's brackets,
        # in C): a value needs a walk only for a string that is too long (or a NUL).
        _check_strings(value, root, refuse_nul)
        return
    if type(value) is str:
        _walk(value, root, 1, refuse_nul)
        return
    if type(value) not in (dict, list):
        return
    if type(value) is dict:
        _check_keys(value, (root,), refuse_nul)
    pairs = value.items() if type(value) is dict else enumerate(value)
    for key, child in pairs:
        kind = type(child)
        if kind is str:
            if len(child) > settings.JSON_MAX_STRING_CHARS or refuse_nul:
                _walk(child, root, 1, refuse_nul, (root, key))
        elif (kind is dict or kind is list) and not _subtree_fits(child, 2, refuse_nul):
            _walk(child, root, 2, refuse_nul, (root, key))


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def _max_depth(raw: bytes) -> int:
    """At least how deeply the JSON text `raw` nests (the root array or object is 1), from
    its brackets alone, in C and NumPy: brackets inside strings can only make it larger, so
    a result within the limit proves every value is."""
    import numpy as np

    brackets = raw.translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1).astype(np.int32)
    return int(steps.cumsum().max())


def _check_strings(value: Any, root: str, refuse_nul: bool) -> None:
    """`check_shape` for a value known to nest within the limit: each top-level child whose
    JSON text is short enough (and NUL-free) is fine as it is; the others are walked."""
    if type(value) is str or type(value) not in (dict, list):
        _walk(value, root, 1, refuse_nul)
        return
    if type(value) is dict:
        _check_keys(value, (root,), refuse_nul)
    limit = settings.JSON_MAX_STRING_CHARS
    pairs = value.items() if type(value) is dict else enumerate(value)
    for key, child in pairs:
        kind = type(child)
        if kind is str:
            if len(child) > limit or refuse_nul:
                _walk(child, root, 1, refuse_nul, (root, key))
        elif kind is dict or kind is list:
            try:
                text = orjson.dumps(child)
            except orjson.JSONEncodeError:
                text = None
            if text is None or len(text) > limit or (refuse_nul and b"\\u0000" in text):
                _walk(child, root, 2, refuse_nul, (root, key))


def _fits(text: bytes, level: int, refuse_nul: bool) -> bool:
    """True when the JSON `text` of a value at `level` cannot break a limit: no string in it
    is longer than the text (a character is at least one byte), and it cannot nest deeper
    than it has opening brackets (brackets inside strings only make this stricter)."""
    if len(text) > settings.JSON_MAX_STRING_CHARS:
        return False
    if level - 1 + text.count(b"{") + text.count(b"[") > settings.JSON_MAX_DEPTH:
        return False
    return not (refuse_nul and b"\\u0000" in text)


def _subtree_fits(value: Any, level: int, refuse_nul: bool) -> bool:
    """`_fits` on the JSON text of a container (False when it has no JSON text)."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:  # e.g. an integer beyond 64 bits
        return False
    return _fits(text, level, refuse_nul)


def _check_keys(node: dict, parts: tuple, refuse_nul: bool) -> None:
    for key in node:
        if problem := _bad_string(key, "a key", refuse_nul):
            raise JsonRejected(f"{_path(parts)}: {problem}")


def _bad_string(text: str, what: str, refuse_nul: bool) -> str | None:
    limit = settings.JSON_MAX_STRING_CHARS
    if len(text) > limit:
        return f"{what} longer than {limit:,} characters"
    if refuse_nul and "\x00" in text:
        return f"{what} with a NUL character (\\u0000), which cannot be stored"
    return None


def _walk(value: Any, root: str, level: int, refuse_nul: bool, parts: tuple | None = None) -> None:
    """The exact check of one value at `level`, raising JsonRejected with its path.

    Only what might break a limit is walked: a child container whose own JSON text fits
    (`_fits`, in C) is skipped, so a wide value (an item with 200 turns: more brackets than
    the depth limit, yet only 4 levels deep) costs one short text per child, not a Python
    visit of every string in it."""
    parts = parts or (root,)
    max_depth = settings.JSON_MAX_DEPTH
    limit = settings.JSON_MAX_STRING_CHARS
    if type(value) is str:
        if problem := _bad_string(value, "a string", refuse_nul):
            raise JsonRejected(f"{_path(parts)}: {problem}")
        return
    stack: list[tuple[Any, int, tuple]] = [(value, level, parts)]
    while stack:
        node, depth, where = stack.pop()
        if depth > max_depth:
            raise JsonRejected(f"{_path(where)}: nested deeper than {max_depth} levels")
        if type(node) is dict:
            _check_keys(node, where, refuse_nul)
            pairs: Any = node.items()
        else:
            pairs = enumerate(node)
        for key, child in pairs:
            kind = type(child)
            if kind is str:
                if len(child) > limit or (refuse_nul and "\x00" in child):
                    problem = _bad_string(child, "a string", refuse_nul)
                    raise JsonRejected(f"{_path((*where, key))}: {problem}")
            elif (kind is dict or kind is list) and not _subtree_fits(child, depth + 1, refuse_nul):
                stack.append((child, depth + 1, (*where, key)))


def load_json(raw: bytes, *, root: str = "body", refuse_nul: bool = True) -> Any:
    """Decodes a JSON body strictly (no NaN / Infinity, valid UTF-8; orjson reads integers
    beyond 64 bits as floats) and checks its shape; raises JsonRejected with a message a
    person can act on."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        if "depth limit" in message or "recursion limit" in message:  # orjson: 1024 levels
            raise JsonRejected(
                f"{root}: nested deeper than {settings.JSON_MAX_DEPTH} levels"
            ) from None
        raise JsonRejected(f"{root} is not valid JSON: {message}") from None
    check_shape(value, root=root, refuse_nul=refuse_nul, raw=raw)
    return value


class LimitedJsonParser(Parser):
    """The API's body parser: `load_json` instead of `json.loads` (which accepts NaN, which
    PostgreSQL's JSON refuses, and raises RecursionError on deep input).

    Every body ninja parses for us is an object (the bulk ingest bodies are arrays, but those
    endpoints read their body themselves): anything else is refused here, because ninja
    would otherwise read e.g. `[1, 2]` as "no body" for an optional body parameter."""

    def parse_body(self, request: HttpRequest) -> Any:
        value = load_json(request.body)
        if not isinstance(value, dict):
            raise JsonRejected(f"body must be a JSON object, got {_json_type(value)}")
        return value

    def parse_querydict(
        self, data: MultiValueDict, list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        """A parameter that takes one value and is given several is refused (Django would
        silently keep the last one)."""
        for key, values in data.lists():
            if key not in list_fields and len(values) > 1:
                raise HttpError(400, f"query parameter {key!r} is given {len(values)} times")
        return super().parse_querydict(data, list_fields, request)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


# --- Rate limit -----------------------------------------------------------------------------


class TokenRateThrottle(BaseThrottle):
    """At most `settings.<setting>` requests per token in any one-minute span (a sliding
    window), counted in the default cache (Redis in production, shared by every process).

    A fixed window let a client spend its budget just before a minute ended and again just
    after it began: twice the limit within seconds. Here the minute is cut into SLOT-second
    counters (one cache key each, incremented atomically) and a request is let through only
    while the counters of the current slot and the WINDOW / SLOT slots before it, its own
    included, add up to at most the limit. They cover at least the last WINDOW seconds, so
    no span of WINDOW seconds ever holds more than the limit; the price is that a spent
    budget comes back up to one SLOT later than an exact log of timestamps would give it.
    A refused request takes its increment back, so a client retrying while refused does not
    lock itself out; two racing requests may both be refused (never both let through).

    Runs after authentication, so only valid tokens are counted. When the cache cannot be
    reached the request is let through (fail open) with a warning at most once a minute:
    a Redis outage must not stop ingest. A limit of 0 or less turns the throttle off.
    """

    WINDOW = 60
    SLOT = 2  # seconds; WINDOW is a whole number of slots
    _warned_at = float("-inf")

    def __init__(self, setting: str, scope: str) -> None:
        self.setting = setting
        self.scope = scope
        self._local = threading.local()  # the last refusal's wait, per request thread

    def allow_request(self, request: HttpRequest) -> bool:
        limit = getattr(settings, self.setting)
        if limit <= 0:
            return True
        secret = request.headers.get("Authorization", "").partition(" ")[2].strip()
        now = time.time()
        current = int(now // self.SLOT)
        token = hashlib.sha256(secret.encode()).hexdigest()[:32]
        keys = [
            f"ratelimit:{self.scope}:{token}:{slot}"
            for slot in range(current - self.WINDOW // self.SLOT, current + 1)
        ]
        try:
            cache = caches["default"]
            # add() starts the slot's counter (a no-op when it exists); incr() is atomic.
            cache.add(keys[-1], 0, timeout=self.WINDOW + 2 * self.SLOT)
            mine = cache.incr(keys[-1])
            counts = cache.get_many(keys[:-1])
        except Exception as exc:  # any cache failure: let the request through
            self._warn(exc)
            return True
        older = [int(counts.get(key) or 0) for key in keys[:-1]]
        if sum(older) + mine <= limit:
            return True
        try:
            cache.decr(keys[-1])  # a refused request does not use up budget
        except Exception as exc:
            self._warn(exc)
        self._local.wait = self._wait(now, current, [*older, mine - 1], limit)
        request.rate_limit = limit  # type: ignore[attr-defined]  # for the 429's detail
        return False

    def _wait(self, now: float, current: int, counts: list[int], limit: int) -> float:
        """Seconds until enough of the oldest slots have left the window for one more
        request; capped at WINDOW (the hint may then be up to one SLOT early)."""
        excess = sum(counts) - limit + 1
        first = current - len(counts) + 1
        for offset, count in enumerate(counts):
            excess -= count
            if excess <= 0:
                # Slot `first + offset` stops being counted when slot first+offset+len starts.
                leaves = (first + offset + len(counts)) * self.SLOT
                return min(float(self.WINDOW), max(1.0, leaves - now))
        return float(self.WINDOW)

    def wait(self) -> float:
        return getattr(self._local, "wait", float(self.WINDOW))

    @classmethod
    def _warn(cls, exc: Exception) -> None:
        now = time.monotonic()
        if now - cls._warned_at > _WARN_EVERY:
            cls._warned_at = now
            log.warning(
                "rate limit not enforced: the cache is unavailable (%s: %s)",
                type(exc).__name__,
                exc,
            )


def retry_after_seconds(wait: float | None) -> int:
    return max(1, math.ceil(wait or 1))
