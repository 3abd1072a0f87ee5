"""No original of a redacted value leaks anywhere (issue 16).

Interactions with planted personal data come in through the API for an agent whose policy
keeps originals; reviewers approve and correct some (one correction types a new address);
exports are built in every format. Then every URL of the URLconf (walked, so a new page is
covered without being listed) is fetched by a reviewer, an admin and an ML engineer, pages
with their session and API routes with their token, with and without a query string naming
the agent; claims are made through the page and the API; every export file is read (gzip
and Parquet decoded). Each body is searched for every original, as planted, lower-cased and
as its digits alone (phones, cards, IBANs): zero hits, except the admin's reveal, which must
show them (the check that the search can fail)."""

import gzip
import io
import json
import re
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.services import token_create
from agents.models import RedactedValue
from retraining import services as export_services
from retraining.models import ExportBatch
from reviews import services as review_services
from reviews.models import ReviewItem
from tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

POLICY = {
    "types": ["email", "phone", "iban", "card"],
    "patterns": [{"name": "CASE_ID", "regex": r"CASE-[0-9]{6}"}],
    "keep_originals": True,
    "regions": ["GB", "DE", "FR", "US"],
}
PLANTED = {
    "email": ["jan.devries@example.nl", "Élodie.Martin@orange.fr", "zoe+orders@posteo.de"],
    "phone": ["+44 20 7946 0958", "030 901820", "+33 6 12 34 56 78", "(202) 555-0143"],
    "iban": [
        "DE89 3704 0044 0532 0130 00",
        "GB29NWBK60161331926819",
        "FR1420041010050500013M02606",
    ],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005"],
    "CASE_ID": ["CASE-482913", "CASE-100200"],
}
TYPED_IN_CORRECTION = "typed.by.reviewer@example.com"
# Route kwargs, with every value to try. A route whose kwargs are not all here fails the
# test (test_it_fills_every_route_of_the_urlconf): add the new name when you add a route.
SKIPPED_ROUTES = {
    # Django's password reset confirmation: a signed one-time link, no data of ours.
    "accounts/reset/<uidb64>/<token>/",
}


def needles() -> list[str]:
    out = {TYPED_IN_CORRECTION}
    for kind, values in PLANTED.items():
        for v in values:
            out |= {v, v.lower()}
            if kind in ("phone", "card", "iban"):
                out.add(re.sub(r"[^0-9A-Za-z]", "", v))
            if kind == "phone":
                out.add(re.sub(r"[^0-9]", "", v))
    return sorted(out)


def leaks(body: str) -> list[str]:
    low = body.lower()
    return [n for n in needles() if n.lower() in low]


def records():
    e, p, i, c, k = (PLANTED[x] for x in ("email", "phone", "iban", "card", "CASE_ID"))
    base = {"agent": "support-bot", "confidence": 0.2, "conversation_id": "conv-1"}
    return [
        {
            **base,
            "external_id": "t-1",
            "input": f"Hi, I am {e[0]}, call me on {p[0]} or {p[1]}.",
            "output": f"Thanks! We refund to {i[0]} for {k[0]}.",
            "context": [{"role": "user", "content": f"My card is {c[0]}, mail {e[1]}"}],
            "metadata": {"customer": {"email": e[2], "phone": p[2]}},
        },
        {
            **base,
            "external_id": "t-2",
            "input": f"| name | iban |\n|---|---|\n| Zoe | {i[1]} |",
            "output": f"<p>Paid with <b>{c[1]}</b>, case {k[1]}</p>",
            "steps": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"id": "c1", "name": "lookup", "arguments": {"card": c[2], "iban": i[2]}}
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": {"phone": p[3], "mail": e[0]}},
            ],
        },
        {
            **base,
            "conversation_id": "conv-2",
            "external_id": "t-3",
            "input": f"csv;{e[1]};{p[3]};ok",
            "output": f"-- \nRegards\n{e[2]}\nTel: {p[2]}",
        },
        {**base, "external_id": "t-4", "input": f"Again: {e[0]}", "output": "Noted."},
    ]


def routes():
    def walk(resolver, prefix=""):
        for p in resolver.url_patterns:
            if isinstance(p, URLResolver):
                yield from walk(p, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern)

    # Django's own admin is covered apart (RedactedValue is not registered in it).
    return sorted(
        {r for r in walk(get_resolver()) if not r.startswith("admin/") or r == "admin/login/"}
    )


KWARG = re.compile(r"<(?:\w+:)?(\w+)>")


def fill(route: str, values: dict[str, list]) -> list[str]:
    names = KWARG.findall(route)
    urls = [route]
    for name in names:
        urls = [
            re.sub(rf"<(?:\w+:)?{name}>", str(v), u, count=1) for u in urls for v in values[name]
        ]
    return ["/" + u for u in urls]


@pytest.fixture
def world(settings, tmp_path, reviewer, lead, ml, api_client):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_TMP_DIR = tmp_path / "media" / ".export-tmp"
    AgentFactory(slug="support-bot", domain="support", redaction=POLICY)
    pipeline = UserFactory(username="pipeline", roles=["agent"])
    response = api_client(pipeline).post("/api/v1/interactions", records())
    assert response.json()["created"] == 4, response.content
    ingest_answer = response.content.decode()
    feedback = [
        {"external_id": x, "agent": "support-bot", "kind": "clicked", "item_ref": "sku-1"}
        for x in ("t-1", "t-3")
    ]
    assert api_client(pipeline).post("/api/v1/feedback", feedback).json()["created"] == 2
    # Decide two items: an approval and a correction that types an address in.
    for verdict in ("approve", "correct"):
        item = review_services.item_claim(reviewer=reviewer)
        corrected = f"Write to [EMAIL_1] or {TYPED_IN_CORRECTION}." if verdict == "correct" else ""
        review_services.decision_submit(
            item_id=item.pk, reviewer=reviewer, verdict=verdict, corrected_output=corrected
        )
    held = review_services.item_claim(reviewer=reviewer)  # the review page shows a held item
    batches = []
    for fmt in ExportBatch.Format.values:
        batch = export_services.batch_request(agent=held.agent, format=fmt, actor=ml, enqueue=False)
        export_services.batch_build(batch_id=batch.pk)
        batches.append(ExportBatch.objects.get(pk=batch.pk))
    for dataset, fmt in (("feedback", "csv"), ("feedback", "parquet")):
        other = export_services.batch_request(
            agent=held.agent, format=fmt, dataset=dataset, actor=ml, enqueue=False
        )
        export_services.batch_build(batch_id=other.pk)
        batches.append(ExportBatch.objects.get(pk=other.pk))
    assert all(b.status == "ready" for b in batches), [
        (b.format, b.failure_reason) for b in batches
    ]
    items = list(ReviewItem.objects.values_list("pk", flat=True))
    token = {u.username: token_create(user=u, name="leak")[1] for u in (reviewer, lead, ml)}
    today = timezone.now().date()
    return {
        "users": (reviewer, lead, ml),
        "token": token,
        "batches": batches,
        "ingest_answer": ingest_answer,
        "values": {
            "item_id": items,
            "pk": [b.pk for b in batches],
            "batch_id": [b.pk for b in batches],
            "slug": ["support-bot"],
            "domain": ["support"],
            "user_id": [reviewer.pk],
            "token_id": [1],
            "comparison_id": [1],
            "run_id": [1],
        },
        "query": f"?agent=support-bot&range=30&from={today - timedelta(days=30)}&to={today}",
    }


def body_of(response) -> str:
    if getattr(response, "streaming", False):
        data = b"".join(response.streaming_content)
    else:
        data = response.content
    return decoded(data)


def decoded(data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:4] == b"PAR1":
        return json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str)
    return data.decode("utf-8", "replace")


def test_it_fills_every_route_of_the_urlconf():
    values = {
        "item_id",
        "pk",
        "batch_id",
        "slug",
        "domain",
        "user_id",
        "token_id",
        "comparison_id",
        "run_id",
    }
    unknown = {
        (r, n)
        for r in routes()
        if r not in SKIPPED_ROUTES
        for n in KWARG.findall(r)
        if n not in values
    }
    assert not unknown, "a new route kwarg: add its values to the `world` fixture"


def test_it_leaks_no_original_in_any_page_api_answer_or_export(world, client):
    checked = 0
    found: list[tuple[str, str, list[str]]] = []
    assert not leaks(world["ingest_answer"])

    def check(who, what, body):
        nonlocal checked
        checked += 1
        hits = leaks(body)
        if hits:
            found.append((who, what, hits))

    for user in world["users"]:
        client.force_login(user)
        headers = {"Authorization": f"Bearer {world['token'][user.username]}"}
        for route in routes():
            if route in SKIPPED_ROUTES:
                continue
            for url in fill(route, world["values"]):
                for query in ("", world["query"]):
                    api = url.startswith("/api/")
                    response = client.get(url + query, headers=headers if api else {})
                    check(user.username, url + query, body_of(response))
        # What a claim answers (the page redirects to the review screen, fetched above).
        check(user.username, "POST /queue/claim", body_of(client.post("/queue/claim", follow=True)))
        check(
            user.username,
            "POST /api/v1/queue/claim",
            body_of(client.post("/api/v1/queue/claim", headers=headers)),
        )
        client.logout()
    for batch in world["batches"]:
        for manifest in (False, True):
            _, opener = export_services.batch_file_open(batch=batch, manifest=manifest)
            with opener() as stream:
                check("file", f"{batch.format} manifest={manifest}", decoded(stream.read()))
    assert not found, found
    assert checked > 500, checked


def test_the_pages_show_placeholders_and_only_the_reveal_shows_originals(world, client):
    """The search above can fail: what it looks for is in the reveal, and the pages it
    searched do show the redacted interactions."""
    reviewer, lead, _ = world["users"]
    client.force_login(reviewer)
    held = ReviewItem.objects.get(status="claimed")
    page = client.get(f"/review/{held.pk}/").content.decode()
    assert "[EMAIL_1]" in page or "[PHONE_1]" in page or "[IBAN_1]" in page
    client.force_login(lead)
    item = ReviewItem.objects.get(interaction__external_id="t-1")
    assert "[PHONE_2]" in client.get(f"/console/items/{item.pk}/").content.decode()
    revealed = client.post(f"/console/items/{item.pk}/reveal").content.decode()
    assert {"jan.devries@example.nl", "+44 20 7946 0958", "DE89 3704 0044 0532 0130 00"} <= set(
        leaks(revealed)
    ) | {n for n in needles() if n in revealed}
    assert TYPED_IN_CORRECTION in revealed  # kept from the correction, for admins only
    assert RedactedValue not in admin.site._registry
