"""The admin console in real Chromium (issue 4): filter the queue browser, bulk-assign
everything matching to a reviewer, who then gets those items first; release a stuck claim.

Data comes in through `interactions_ingest`, so items are routed as in production.
`live_server` makes every test transactional.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from console import services as assignment
from ingest.services import interactions_ingest
from reviews import services
from reviews.models import ReviewItem
from tests.factories import AgentFactory

pytestmark = pytest.mark.usefixtures("transactional_db")

REVIEW_URL = re.compile(r"/review/(\d+)/")

# Counts htmx requests and swaps of the browser's #results, from the first script on a page.
HTMX_COUNTERS = """
window.__htmx = {started: 0, ended: 0, swaps: 0};
document.addEventListener("htmx:beforeRequest", () => window.__htmx.started++);
document.addEventListener("htmx:afterRequest", () => window.__htmx.ended++);
document.addEventListener("htmx:afterSwap", (e) => {
  if (e.detail.target.id === "results") window.__htmx.swaps++;
});
"""


def htmx_settled(page, *, after: int) -> None:
    """Waits until more than `after` htmx requests started and all of them ended (htmx queues
    a second request on the same form and only issues it when the first one ends, in the
    same task, so this cannot fire in between)."""
    page.wait_for_function(
        "n => window.__htmx.started > n && window.__htmx.ended === window.__htmx.started",
        arg=after,
    )


def filter_by_domain(page, domain: str) -> None:
    """Types a domain into the browser's filters and commits it with Enter, as a person does,
    then waits until the results have settled."""
    before = page.evaluate("window.__htmx.started")
    page.locator("#id_domain").fill(domain)
    page.locator("#id_domain").press("Enter")
    page.wait_for_url(re.compile(rf"domain={domain}"))
    htmx_settled(page, after=before)


def ingest(agent: str, n: int, *, confidence: float = 0.5) -> list[int]:
    """`n` low-confidence interactions of `agent`, routed; returns their review item ids."""
    now = datetime.now(UTC)
    records = (
        {
            "external_id": f"{agent}-{i}",
            "agent": agent,
            "input": f"Question {i} for {agent}",
            "output": "An answer.",
            "confidence": confidence,
            "created_at": (now - timedelta(hours=i)).isoformat(),
        }
        for i in range(n)
    )
    result = interactions_ingest(records=enumerate(records), source="e2e")
    assert not result.errors and result.routed == n, result
    return list(
        ReviewItem.objects.filter(interaction__external_id__startswith=f"{agent}-")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


@pytest.fixture
def billing(reviewer):
    """50 billing items (the ones to assign), next to support and billing work of other
    agents; rita may review both domains."""
    reviewer.reviewer_profile.domains = ["billing", "support"]
    reviewer.reviewer_profile.save()
    AgentFactory(slug="billing-bot", name="Billing bot", domain="billing")
    AgentFactory(slug="invoice-bot", name="Invoice bot", domain="billing")
    AgentFactory(slug="support-bot", name="Support bot", domain="support")
    ingest("invoice-bot", 4)
    ingest("support-bot", 6)
    return ingest("billing-bot", 50, confidence=0.6)


def test_it_assigns_all_items_matching_the_filters_to_a_reviewer(page, login, lead, billing):
    page.add_init_script(HTMX_COUNTERS)
    login("lee", next_url="/console/")
    expect(page.locator("#results .bulk-bar")).to_contain_text("60 items")

    page.locator("#id_agent").select_option(label="billing-bot")
    page.wait_for_url(re.compile(r"agent=billing-bot"))
    filter_by_domain(page, "billing")
    expect(page.locator("#results .bulk-bar")).to_contain_text("50 items")

    page.locator("#bulk-action").select_option("assign")
    page.locator("#bulk-reviewer").select_option("rita")
    page.locator("#bulk-scope").select_option(label="All 50 matching")
    page.get_by_role("button", name="Apply").click()

    # More than ten items: the count is confirmed once before anything changes.
    expect(page.locator("#bulk-confirm")).to_contain_text(
        "Assign to reviewer rita: 50 items. Go ahead?"
    )
    assert not ReviewItem.objects.filter(assigned_to__isnull=False).exists()
    page.get_by_role("button", name="Yes, change 50 items").click()

    expect(page.get_by_role("status")).to_have_text("Assigned to rita: 50 items.")
    assert sorted(
        ReviewItem.objects.filter(assigned_to__username="rita").values_list("pk", flat=True)
    ) == sorted(billing)
    expect(page.locator("#results tbody tr").first).to_contain_text("rita")


def test_it_swaps_the_results_once_per_filter_change(page, login, lead, billing):
    page.add_init_script(HTMX_COUNTERS)
    login("lee", next_url="/console/")

    filter_by_domain(page, "billing")

    expect(page.locator("#results .bulk-bar")).to_contain_text("54 items")
    assert page.evaluate("window.__htmx.swaps") == 1


def test_it_gives_a_reviewer_their_assigned_items_first(login, reviewer, lead, billing):
    # Unassigned support work that would come first by priority and confidence.
    others = ReviewItem.objects.exclude(pk__in=billing)
    assignment.items_set_priority(items=others, priority=10, actor=lead)
    assignment.items_assign(
        items=ReviewItem.objects.filter(pk__in=billing), reviewer=reviewer, actor=lead
    )

    page = login("rita", next_url="/queue/")

    assigned = page.locator("section", has=page.get_by_role("heading", name="Assigned to me"))
    expect(assigned.get_by_role("heading")).to_contain_text("(50)")
    rows = assigned.locator("tbody tr")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("Billing bot")
    page.get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(REVIEW_URL)
    item_id = int(REVIEW_URL.search(page.url).group(1))
    assert item_id in billing
    expect(page.locator(".chips")).to_contain_text("Assigned to you")


def test_it_releases_a_stuck_claim(login, lead, other_reviewer):
    AgentFactory(slug="support-bot", name="Support bot", domain="support")
    ingest("support-bot", 3)
    stuck = services.item_claim(reviewer=other_reviewer)
    page = login("lee", next_url="/console/?status=claimed")
    row = page.locator(f"#item-{stuck.pk}")
    expect(row).to_contain_text("oscar")
    expect(page.locator("#results tbody tr")).to_have_count(1)

    row.get_by_role("checkbox").check()
    page.locator("#bulk-action").select_option("release")
    page.get_by_role("button", name="Apply").click()

    expect(page.get_by_role("status")).to_have_text("Released 1 item.")
    expect(page.get_by_text("No items match these filters.")).to_be_visible()
    stuck.refresh_from_db()
    assert (stuck.status, stuck.claimed_by_id, stuck.lease_expires_at) == ("pending", None, None)


def test_it_shows_the_queue_browser(login, screenshot, reviewer, other_reviewer, lead):
    for user in (reviewer, other_reviewer):
        user.reviewer_profile.domains = ["support", "legal", "retail"]
        user.reviewer_profile.save()
    AgentFactory(slug="support-bot", name="Support assistant", domain="support", audit_rate=1.0)
    AgentFactory(slug="legal-bot", name="Legal advisor", domain="legal", required_reviews=2)
    AgentFactory(slug="shop-recs", name="Product recommender", domain="retail")
    now = datetime.now(UTC)
    rows = [
        ("support-bot", 0.31, 0.5),
        ("support-bot", 0.92, 2),
        ("support-bot", 0.55, 7),
        ("support-bot", 0.48, 30),
        ("support-bot", 0.95, 52),
        ("legal-bot", 0.41, 1),
        ("legal-bot", 0.62, 5),
        ("legal-bot", 0.58, 26),
        ("legal-bot", 0.22, 80),
        ("shop-recs", 0.35, 0.2),
        ("shop-recs", 0.49, 3),
        ("shop-recs", 0.66, 12),
        ("shop-recs", 0.12, 40),
    ]
    records = [
        {
            "external_id": f"c-{i}",
            "agent": agent,
            "input": "…",
            "output": "…",
            "confidence": confidence,
            "created_at": (now - timedelta(hours=hours)).isoformat(),
        }
        for i, (agent, confidence, hours) in enumerate(rows)
    ]
    assert interactions_ingest(records=enumerate(records), source="e2e").routed == len(rows)
    items = {i.interaction.external_id: i for i in ReviewItem.objects.select_related("interaction")}

    def rows_of(*n: int):
        return ReviewItem.objects.filter(pk__in=[items[f"c-{i}"].pk for i in n])

    assignment.items_assign(items=rows_of(2, 6, 11), reviewer=reviewer, actor=lead)
    assignment.items_assign(items=rows_of(3, 7), reviewer=other_reviewer, actor=lead)
    assignment.items_set_priority(items=rows_of(8, 12), priority=5, actor=lead)
    services.item_claim(reviewer=other_reviewer)

    page = login("lee", next_url="/console/")

    expect(page.locator("#results .bulk-bar")).to_contain_text(f"{len(rows)} items")
    expect(page.locator("#results tbody tr")).to_have_count(len(rows))
    expect(page.locator("#results .status-claimed")).to_have_count(1)
    screenshot("console", full_page=True)


# --- day one: open an item from its row, pool members, the policy's fields ------------------


def test_it_opens_an_item_by_clicking_anywhere_on_its_row(login, lead, billing):
    first, second = billing[0], billing[1]
    page = login("lee", next_url="/console/?agent=billing-bot")
    table = page.locator("#results table.browser")

    # The table takes the window's width, ids and slugs on one line, long text cut.
    assert table.bounding_box()["width"] > 1250  # of a 1360 px window
    id_cell = page.locator(f"#item-{first} td.id")
    assert id_cell.evaluate("td => getComputedStyle(td).whiteSpace") == "nowrap"
    question = page.locator(f"#item-{first} td.text")
    assert question.evaluate("td => getComputedStyle(td).textOverflow") == "ellipsis"
    expect(question).to_have_attribute("title", re.compile(r"^Question \d+ for billing-bot$"))

    # The row's checkbox selects, it does not open the item.
    page.locator(f"#item-{second}").get_by_role("checkbox").check()
    expect(page).to_have_url(re.compile(r"/console/\?agent=billing-bot$"))

    # Keyboard users have a real link in the row.
    expect(page.locator(f"#item-{first}").get_by_role("link", name=f"#{first}")).to_have_attribute(
        "href", f"/console/items/{first}/"
    )
    page.locator(f"#item-{first} td.text").click()  # not the link: the row
    page.wait_for_url(f"**/console/items/{first}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Item #{first}")
    expect(page.locator(".turn-current .bubble")).to_have_text(
        ReviewItem.objects.get(pk=first).interaction.input
    )
    expect(page.get_by_role("heading", name="Audit trail")).to_be_visible()


def test_it_adds_and_removes_a_reviewer_in_a_pool(login, lead, reviewer, other_reviewer):
    page = login("lee", next_url="/console/pools/")
    page.get_by_label("Open or start a pool").fill("legal")
    page.get_by_role("button", name="Open pool").click()
    page.wait_for_url("**/console/pools/legal/")
    expect(page.get_by_text("Nobody reviews this domain yet")).to_be_visible()

    page.get_by_label("Reviewer", exact=True).select_option("rita")
    page.get_by_role("button", name="Add to pool").click()

    expect(page.get_by_role("status")).to_have_text("Added rita to the legal pool.")
    expect(page.locator("table.pool-members tbody tr")).to_have_count(1)
    reviewer.reviewer_profile.refresh_from_db()
    assert reviewer.reviewer_profile.domains == ["legal", "support"]

    # Adding with no reviewer chosen explains itself next to the field.
    page.get_by_role("button", name="Add to pool").click()
    expect(page.locator("#id_reviewer_error")).to_have_text("Choose the reviewer to add.")

    page.get_by_role("button", name="Remove rita from the pool").click()
    expect(page.get_by_role("status")).to_have_text("Removed rita from the legal pool.")
    expect(page.locator("table.pool-members")).to_have_count(0)
    reviewer.reviewer_profile.refresh_from_db()
    assert reviewer.reviewer_profile.domains == ["support"]


def test_it_edits_a_policy_through_its_fields(login, lead):
    agent = AgentFactory(
        slug="support-bot",
        name="Support bot",
        alert_thresholds={"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}},
    )
    page = login("lee", next_url="/console/agents/support-bot/")
    below = page.get_by_label("Resolution rate: alert below")
    expect(below).to_have_value("0.7")

    below.fill("1.5")
    page.get_by_label("Backlog: alert above").fill("200")
    page.get_by_role("button", name="Save policy").click()

    expect(page.locator("#id_alert_resolution_rate_below_error")).to_have_text(
        "Ensure this value is less than or equal to 1."
    )
    expect(page.locator(".error-summary")).to_contain_text(
        "Resolution rate: alert below: Ensure this value is less than or equal to 1."
    )
    agent.refresh_from_db()
    assert agent.alert_thresholds == {"resolution_rate": {"below": 0.7, "days": 7, "min_n": 50}}

    page.get_by_label("Resolution rate: alert below").fill("0.65")
    page.get_by_label("Resolution rate: over days").fill("14")
    page.get_by_role("button", name="Save policy").click()

    expect(page.get_by_role("status")).to_have_text("Saved the review policy of support-bot.")
    agent.refresh_from_db()
    assert agent.alert_thresholds == {
        "resolution_rate": {"below": 0.65, "days": 14, "min_n": 50},
        "backlog": {"above": 200},
    }
