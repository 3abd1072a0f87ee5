"""The admin console pages: roles, filters, bulk actions, an item's page, policies, audit CSV.
(Pools: test_pools.py; the policy form's alert thresholds: test_policy.py.)"""

import csv
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import Agent
from console.services import items_assign as assign
from core.models import AuditEvent
from reviews.models import Review, ReviewItem
from tests.factories import (
    AgentFactory,
    AuditEventFactory,
    ReviewerFactory,
    ReviewFactory,
    ReviewItemFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, lead):
    client.force_login(lead)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/console/",
        "/console/workload/",
        "/console/pools/",
        "/console/agents/",
        "/console/audit/",
        "/console/adjudication/",
        "/console/items/1/",
        "/console/pools/support/",
        "/console/reviewers/1/",
    ],
)
def test_it_refuses_console_pages_to_reviewers(client, reviewer, url):
    client.force_login(reviewer)
    response = client.get(url)
    assert response.status_code == 403
    assert b"<h1>Not allowed</h1>" in response.content


@pytest.mark.parametrize(
    "path",
    [
        "/console/",
        "/console/adjudication/",
        "/console/adjudication/1/",
        "/console/items/1/",
        "/console/pools/legal/",
    ],
)
def test_it_sends_anonymous_users_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_it_filters_the_browser(admin_client, queued):
    queued(3)
    queued(2, domain="legal")
    response = admin_client.get("/console/?domain=legal")
    assert response.context["paginator"].count == 2


def test_it_renders_the_results_fragment_for_htmx(admin_client, queued):
    queued(2)
    response = admin_client.get("/console/?domain=support", headers={"HX-Request": "true"})
    assert b'id="results"' in response.content and b"<html" not in response.content


def test_it_keeps_browser_queries_flat(admin_client, reviewer, queued):
    queued(3)
    with CaptureQueriesContext(connection) as small:
        admin_client.get("/console/")
    queued(40, domain="legal")
    queued(5, claimed=True, assigned_to=reviewer)
    with CaptureQueriesContext(connection) as large:
        admin_client.get("/console/")
    assert len(small) == len(large)


def test_it_reads_the_browser_page_once_per_purpose(admin_client, reviewer, queued):
    """The capped count, the page's rows and their questions: one query each. The reviewers
    offered by the filters and by the bulk form are read once, as nothing else is twice."""
    queued(3, claimed=True, assigned_to=reviewer)
    with CaptureQueriesContext(connection) as page:
        admin_client.get("/console/")
    sql = [q["sql"] for q in page.captured_queries]
    assert len(sql) == len(set(sql))
    assert sum('FROM "reviews_reviewitem"' in s for s in sql) == 2
    assert sum('FROM "reviews_interaction"' in s for s in sql) == 1


def test_it_assigns_all_matching_items_in_bulk(admin_client, reviewer, queued):
    queued(5)
    queued(2, domain="legal")
    response = admin_client.post(
        "/console/bulk",
        {"action": "assign", "scope": "matching", "reviewer": "rita", "domain": "support"},
    )
    assert response.status_code == 302 and "domain=support" in response["Location"]
    assert ReviewItem.objects.filter(assigned_to=reviewer).count() == 5
    assert AuditEvent.objects.filter(action="item.assigned").count() == 5


def test_it_assigns_selected_items(admin_client, reviewer, queued):
    items = queued(4)
    admin_client.post(
        "/console/bulk",
        {
            "action": "assign",
            "scope": "selected",
            "reviewer": "rita",
            "ids": [items[0].pk, items[2].pk],
        },
    )
    assert set(ReviewItem.objects.filter(assigned_to=reviewer).values_list("pk", flat=True)) == {
        items[0].pk,
        items[2].pk,
    }


def test_it_explains_an_incomplete_bulk_form(admin_client, queued):
    queued(1)
    response = admin_client.post(
        "/console/bulk", {"action": "assign", "scope": "selected"}, follow=True
    )
    text = response.content.decode()
    assert "Choose the reviewer" in text and "Select at least one item" in text


def test_it_edits_an_agent_policy_and_audits_it(admin_client):
    agent = AgentFactory(slug="support-bot")
    data = {
        "name": "Support",
        "kind": "chat",
        "domain": "support",
        "confidence_threshold": 0.6,
        "audit_rate": 0.05,
        "required_reviews": 2,
        "guidelines": "Be kind.",
        "review_intents_text": "refund, legal_threat",
        "review_domains_text": "",
    }
    response = admin_client.post(f"/console/agents/{agent.slug}/", data)
    assert response.status_code == 302
    agent = Agent.objects.get(pk=agent.pk)
    assert (agent.confidence_threshold, agent.required_reviews, agent.review_intents) == (
        0.6,
        2,
        ["legal_threat", "refund"],
    )
    event = AuditEvent.objects.get(action="agent.updated")
    assert (
        event.before["confidence_threshold"] == 0.7 and event.after["confidence_threshold"] == 0.6
    )


def test_it_neutralises_formulas_in_the_audit_csv(admin_client, lead):
    AuditEventFactory(
        actor=lead, action='=HYPERLINK("http://evil")', target_type="x", target_id=None
    )
    AuditEventFactory(actor=lead, action="+1", target_type="-2", target_id=None)
    response = admin_client.get("/console/audit/?format=csv")
    body = b"".join(response.streaming_content).decode()
    assert response["Content-Type"].startswith("text/csv")
    assert "'=HYPERLINK" in body and "\n=HYPERLINK" not in body and ",=HYPERLINK" not in body
    assert ",'+1,'-2," in body


def test_it_filters_the_audit_log_by_item(admin_client, lead):
    AuditEventFactory(actor=lead, action="item.assigned", target_id=7)
    AuditEventFactory(actor=lead, action="item.assigned", target_id=8)
    response = admin_client.get("/console/audit/?item=7")
    assert [e.target_id for e in response.context["page"].object_list] == [7]


def test_it_keeps_the_filters_in_the_page_links_and_the_csv_link(admin_client, lead, queued):
    queued(60)
    html = admin_client.get("/console/?domain=support&sort=oldest").content.decode()
    assert 'href="?domain=support&amp;sort=oldest&amp;page=2"' in html
    AuditEventFactory.create_batch(60, actor=lead, action="item.assigned", target_id=1)
    html = admin_client.get("/console/audit/?action=item.assigned&page=2").content.decode()
    assert 'href="?action=item.assigned&amp;format=csv"' in html


# --- adjudication ---------------------------------------------------------------------------


@pytest.fixture
def dispute(db):
    """A four-eyes item of legal-bot that lena approved and lars corrected."""
    legal = AgentFactory(slug="legal-bot", domain="legal", four_eyes=True)
    item = ReviewItemFactory(interaction__agent=legal, interaction__domain="legal", disputed=True)
    for username, verdict, corrected in (("lena", "approve", ""), ("lars", "correct", "Better")):
        ReviewFactory(
            item=item,
            reviewer=ReviewerFactory(username=username, domains=["legal"]),
            verdict=verdict,
            corrected_output=corrected,
        )
    return item


def test_it_lists_disputed_items_with_both_verdicts(admin_client, dispute):
    item = dispute
    html = admin_client.get("/console/adjudication/").content.decode()
    assert f'href="/console/adjudication/{item.pk}/"' in html
    assert "lena" in html and "lars" in html
    assert "verdict-approve" in html and "verdict-correct" in html


def test_it_shows_all_reviews_side_by_side_for_adjudication(admin_client, dispute):
    item = dispute
    html = admin_client.get(f"/console/adjudication/{item.pk}/").content.decode()
    assert "side-by-side" in html and "Better" in html
    assert 'value="escalate"' not in html and 'value="correct"' in html


def test_it_adjudicates_and_goes_back_to_the_list(admin_client, dispute):
    item = dispute
    response = admin_client.post(
        f"/console/adjudication/{item.pk}/",
        {"verdict": "correct", "corrected_output": "Final answer", "notes": "Lead's call"},
        follow=True,
    )
    assert response.redirect_chain == [("/console/adjudication/", 302)]
    assert b"Item #%d corrected. That decision is final." % item.pk in response.content
    item.refresh_from_db()
    assert (item.status, item.final_verdict) == ("done", "correct")
    assert Review.objects.get(item=item, is_adjudication=True).corrected_output == "Final answer"


def test_it_keeps_the_lead_s_text_when_an_adjudication_is_invalid(admin_client, dispute):
    item = dispute
    response = admin_client.post(
        f"/console/adjudication/{item.pk}/",
        {"verdict": "correct", "corrected_output": item.interaction.output, "notes": "Hmm"},
    )
    assert response.status_code == 400
    assert b"approve instead" in response.content and b"Hmm" in response.content


def test_it_refuses_to_adjudicate_an_item_twice(admin_client, dispute):
    item = dispute
    admin_client.post(f"/console/adjudication/{item.pk}/", {"verdict": "approve"})
    response = admin_client.post(
        f"/console/adjudication/{item.pk}/", {"verdict": "reject", "notes": "x"}
    )
    assert response.status_code == 409
    assert b"not awaiting adjudication" in response.content
    assert Review.objects.filter(is_adjudication=True).count() == 1


# --- filters never widen a selection (issue 17) ----------------------------------------------


def test_it_filters_the_browser_by_agent_slug(admin_client, queued):
    queued(3)
    legal = queued(2, domain="legal")
    response = admin_client.get("/console/?agent=legal-bot")
    assert [i.pk for i in response.context["page"].object_list] == [i.pk for i in legal]
    assert '<option value="legal-bot" selected>legal-bot</option>' in response.content.decode()


def test_it_lists_nothing_when_a_filter_is_invalid(admin_client, queued):
    queued(3)
    queued(2, domain="legal")
    response = admin_client.get("/console/?agent=nope&domain=legal")
    html = response.content.decode()
    assert response.context["paginator"].count == 0
    assert list(response.context["page"].object_list) == []
    assert "These filters are invalid, so nothing is listed" in html
    assert "Agent: Select a valid choice. nope is not one of the available choices." in html
    assert 'id="item-' not in html


def test_it_shows_the_filter_errors_in_the_htmx_fragment(admin_client, queued):
    queued(3)
    response = admin_client.get(
        "/console/?min_confidence=2&domain=support", headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="results"' in html
    assert "These filters are invalid, so nothing is listed" in html
    assert "Confidence ≥: Ensure this value is less than or equal to 1." in html
    assert 'id="item-' not in html


def test_it_refuses_a_bulk_action_on_more_ids_than_the_cap(admin_client, reviewer, queued):
    items = queued(2)
    ids = ",".join(str(n) for n in range(items[-1].pk + 1, items[-1].pk + 1002))
    response = admin_client.post(
        "/console/bulk",
        {"action": "assign", "scope": "selected", "reviewer": "rita", "ids": [items[0].pk, ids]},
        follow=True,
    )
    assert "ids: 1,000 items at most per action" in response.content.decode()
    assert not ReviewItem.objects.filter(assigned_to__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="item.assigned").exists()


def test_it_counts_repeated_bulk_ids_once(admin_client, reviewer, queued):
    items = queued(2)
    repeated = ",".join([str(items[0].pk)] * 1500)
    admin_client.post(
        "/console/bulk",
        {"action": "assign", "scope": "selected", "reviewer": "rita", "ids": [repeated]},
    )
    assigned = ReviewItem.objects.filter(assigned_to=reviewer).values_list("pk", flat=True)
    assert list(assigned) == [items[0].pk]
    assert AuditEvent.objects.filter(action="item.assigned").count() == 1


def test_it_refuses_a_bulk_action_on_all_matching_invalid_filters(admin_client, reviewer, queued):
    queued(3)
    response = admin_client.post(
        "/console/bulk",
        {"action": "assign", "scope": "matching", "reviewer": "rita", "agent": "3"},
        follow=True,
    )
    assert "The filters are invalid (agent: Select a valid choice." in response.content.decode()
    assert "nothing was changed" in response.content.decode()
    assert not ReviewItem.objects.filter(assigned_to__isnull=False).exists()
    assert not AuditEvent.objects.filter(action="item.assigned").exists()


def test_it_assigns_all_matching_items_of_an_agent_given_by_slug(admin_client, reviewer, queued):
    support = queued(3)
    reviewer.reviewer_profile.domains = ["support", "legal"]
    reviewer.reviewer_profile.save()
    queued(2, domain="legal")
    response = admin_client.post(
        "/console/bulk",
        {"action": "assign", "scope": "matching", "reviewer": "rita", "agent": "support-bot"},
    )
    assert response["Location"] == "/console/?agent=support-bot"
    assigned = ReviewItem.objects.filter(assigned_to=reviewer).values_list("pk", flat=True)
    assert sorted(assigned) == [i.pk for i in support]


# --- bulk actions over ten items are confirmed once -----------------------------------------


def _confirm_form(html: str) -> dict[str, list[str]]:
    """The hidden fields of the confirmation form, as the browser would send them back."""
    fields: dict[str, list[str]] = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html):
        fields.setdefault(name, []).append(value)
    return fields


def test_it_asks_once_before_a_bulk_action_on_more_than_ten_items(admin_client, reviewer, queued):
    items = queued(11)
    post = {"action": "assign", "scope": "matching", "reviewer": "rita", "domain": "support"}
    response = admin_client.post("/console/bulk", post)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Assign to reviewer rita: 11 items. Go ahead?" in html
    assert '<button type="submit" name="confirm" value="yes"' in html
    assert not ReviewItem.objects.filter(assigned_to__isnull=False).exists()

    fields = _confirm_form(html)
    assert fields["domain"] == ["support"] and fields["scope"] == ["matching"]
    assert len(fields["selection"][0]) == 64
    response = admin_client.post("/console/bulk", {**fields, "confirm": "yes"})
    assert response["Location"] == "/console/?domain=support"
    assigned = ReviewItem.objects.filter(assigned_to=reviewer).values_list("pk", flat=True)
    assert sorted(assigned) == sorted(i.pk for i in items)
    assert AuditEvent.objects.filter(action="item.assigned").count() == 11


def test_it_does_not_act_on_a_selection_other_than_the_confirmed_one(
    admin_client, reviewer, queued
):
    queued(11)
    post = {"action": "assign", "scope": "matching", "reviewer": "rita", "domain": "support"}
    fields = _confirm_form(admin_client.post("/console/bulk", post).content.decode())
    ReviewItemFactory(interaction__agent=Agent.objects.get(slug="support-bot"))  # arrives
    response = admin_client.post("/console/bulk", {**fields, "confirm": "yes"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "The selection changed since you confirmed it" in html
    assert "Assign to reviewer rita: 12 items. Go ahead?" in html
    assert not ReviewItem.objects.filter(assigned_to__isnull=False).exists()


def test_it_does_not_act_when_the_confirmed_action_was_changed(admin_client, reviewer, queued):
    queued(11)
    post = {"action": "assign", "scope": "matching", "reviewer": "rita", "domain": "support"}
    fields = _confirm_form(admin_client.post("/console/bulk", post).content.decode())
    response = admin_client.post(
        "/console/bulk", {**fields, "action": "unassign", "confirm": "yes"}
    )
    assert "Unassign: 11 items. Go ahead?" in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_it_does_not_act_on_a_confirmation_without_its_token(admin_client, reviewer, queued):
    queued(11)
    post = {"action": "assign", "scope": "matching", "reviewer": "rita", "confirm": "yes"}
    response = admin_client.post("/console/bulk", {**post, "selection": "0" * 64})
    assert "Assign to reviewer rita: 11 items. Go ahead?" in response.content.decode()
    assert not ReviewItem.objects.filter(assigned_to__isnull=False).exists()


def test_it_asks_to_confirm_selected_items_too(admin_client, queued):
    items = queued(12)
    post = {"action": "priority", "priority": 5, "scope": "selected", "ids": [i.pk for i in items]}
    html = admin_client.post("/console/bulk", post).content.decode()
    assert "Set priority 5: 12 items. Go ahead?" in html
    assert _confirm_form(html)["ids"] == [str(i.pk) for i in items]
    assert not ReviewItem.objects.filter(priority=5).exists()


def test_it_renders_the_confirmation_fragment_for_htmx(admin_client, queued):
    queued(11)
    response = admin_client.post(
        "/console/bulk",
        {"action": "unassign", "scope": "matching"},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert "<html" not in html and 'id="bulk-confirm"' in html
    assert "Unassign: 11 items. Go ahead?" in html


# --- audit log before / after as JSON -------------------------------------------------------


def test_it_shows_audit_before_and_after_as_json(admin_client, lead):
    AuditEventFactory(actor=lead, before={"b": None, "a": "x<y"}, after={"ok": True, "n": [1]})
    html = admin_client.get("/console/audit/").content.decode()
    before = "{&quot;a&quot;:&quot;x&lt;y&quot;,&quot;b&quot;:null}"
    assert f'<code class="json">{before}</code>' in html
    assert '<code class="json">{&quot;n&quot;:[1],&quot;ok&quot;:true}</code>' in html
    assert "None" not in html and "True" not in html


def test_it_writes_audit_before_and_after_as_json_in_the_csv(admin_client, lead):
    AuditEventFactory(actor=lead, before={"b": None, "a": "é"}, after={"ok": True})
    AuditEventFactory(actor=lead, before=-1, after="=cmd")
    response = admin_client.get("/console/audit/?format=csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r[5:] for r in rows[1:]] == [
        ["'-1", '"=cmd"'],
        ['{"a":"é","b":null}', '{"ok":true}'],
    ]


def test_it_sends_htmx_back_to_the_browser_after_a_bulk_action(admin_client, reviewer, queued):
    items = queued(2)
    response = admin_client.post(
        "/console/bulk",
        {"action": "assign", "scope": "matching", "reviewer": "rita", "domain": "support"},
        headers={"HX-Request": "true"},
    )
    assert response["HX-Redirect"] == "/console/?domain=support"
    assigned = ReviewItem.objects.filter(assigned_to=reviewer).values_list("pk", flat=True)
    assert sorted(assigned) == [i.pk for i in items]


# --- the browser's rows open the item's page ------------------------------------------------


def test_it_links_every_browser_row_to_its_item(admin_client, queued):
    items = queued(2)
    html = admin_client.get("/console/").content.decode()
    for item in items:
        assert f'<tr id="item-{item.pk}" class="row-link">' in html
        assert f'<a href="/console/items/{item.pk}/" data-row-link>#{item.pk}</a>' in html


def test_it_escapes_the_agents_text_in_the_browser(admin_client):
    ReviewItemFactory(interaction__domain='<b>"legal"</b>&')
    html = admin_client.get("/console/").content.decode()
    cell = "&lt;b&gt;&quot;legal&quot;&lt;/b&gt;&amp;"
    assert f'<td class="slug clip" title="{cell}" dir="auto">{cell}</td>' in html
    assert "<b>" not in html


def test_it_shows_a_claimed_four_eyes_row(admin_client, reviewer, other_reviewer, queued):
    queued(1, claimed=True, claimed_by=other_reviewer, assigned_to=reviewer, four_eyes=True)
    html = admin_client.get("/console/").content.decode()
    status = '<span class="status status-claimed">Claimed</span>'
    assert f'{status} <span class="badge four-eyes"' in html
    assert '<td class="slug clip" title="rita">rita</td>' in html
    claim = r'<td class="nowrap">oscar<br><small>lease 1[45]\xa0minutes</small></td>'
    assert re.search(claim, html)


def test_it_shows_the_start_of_the_question_in_the_browser(admin_client, queued):
    queued(1, interaction__input="<b>Can I</b> return " + "x" * 400)
    html = admin_client.get("/console/").content.decode()
    start = "&lt;b&gt;Can I&lt;/b&gt; return " + "x" * 180  # 200 characters of the question
    assert f'<td class="text" title="{start}" dir="auto">{start}</td>' in html
    assert "x" * 181 not in html and "<b>Can I" not in html


def test_it_shows_an_item_with_its_reviews_and_audit_trail_escaped(
    admin_client, lead, reviewer, other_reviewer
):
    item = ReviewItemFactory(
        interaction__input="<script>alert('in')</script>",
        interaction__output="<img src=x onerror=alert('out')>",
        four_eyes=True,
    )
    ReviewFactory(item=item, reviewer=other_reviewer, verdict="reject", notes="<i>too risky</i>")
    ReviewFactory(item=item, verdict="skip")
    assign(items=ReviewItem.objects.filter(pk=item.pk), reviewer=reviewer, actor=lead)

    response = admin_client.get(f"/console/items/{item.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert f"Item #{item.pk}" in html
    assert "&lt;script&gt;alert(&#x27;in&#x27;)&lt;/script&gt;" in html
    assert "<script>alert" not in html and "<img src=x" not in html and "<i>too" not in html
    assert "&lt;i&gt;too risky&lt;/i&gt;" in html
    assert 'Reviews <span class="muted">(2)</span>' in html  # the skip is shown too
    assert "<code>item.assigned</code>" in html and "lee" in html
    assert "<dt>Assigned to</dt><dd>rita</dd>" in html


def test_it_links_a_disputed_item_to_its_adjudication(admin_client, dispute):
    html = admin_client.get(f"/console/items/{dispute.pk}/").content.decode()
    assert f'href="/console/adjudication/{dispute.pk}/">Adjudicate</a>' in html


def test_it_answers_404_for_an_item_that_does_not_exist(admin_client):
    assert admin_client.get("/console/items/999999/").status_code == 404


def test_it_keeps_the_item_page_queries_flat(admin_client, lead, django_assert_num_queries):
    quiet = ReviewItemFactory()
    ReviewFactory(item=quiet, verdict="skip")
    busy = ReviewItemFactory(four_eyes=True)
    for _ in range(2):
        ReviewFactory(item=busy, verdict="approve")
    AuditEventFactory.create_batch(30, actor=lead, action="item.priority", target_id=busy.pk)
    with CaptureQueriesContext(connection) as one:
        admin_client.get(f"/console/items/{quiet.pk}/")
    with django_assert_num_queries(len(one)):
        response = admin_client.get(f"/console/items/{busy.pk}/")
    assert response.content.decode().count("<code>item.priority</code>") == 30


@pytest.mark.django_db
def test_the_workload_page_badges_no_pool_and_away_apart(client, lead, reviewer):
    from django.contrib.auth import get_user_model

    from tests.factories import ReviewerFactory, ReviewFactory

    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", "x" * 20)
    ReviewFactory(reviewer=boss)
    away = ReviewerFactory(username="abe", domains=["legal"])
    away.reviewer_profile.active = False
    away.reviewer_profile.save()
    client.force_login(lead)

    page = client.get("/console/workload/").content.decode()

    boss_row = page[page.index("<td>boss") :].split("</td>", 1)[0]
    abe_row = page[page.index("<td>abe") :].split("</td>", 1)[0]
    assert "no pool" in boss_row and "away" not in boss_row
    assert "away" in abe_row and "no pool" not in abe_row
