"""The reviewer's workflow in real Chromium (issue 3): log in, claim, decide by keyboard,
correct with the live diff, four-eyes disputes to adjudication, a lost hold, escaping.

Data comes in through `interactions_ingest`, the path the agents use, so items are routed
exactly as in production. `live_server` makes every test transactional.
"""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from console import services as assignment
from ingest.services import interactions_ingest
from retraining.models import TrainingPair
from reviews.models import Review, ReviewItem
from tests.e2e.conftest import PASSWORD
from tests.factories import AgentFactory

pytestmark = pytest.mark.usefixtures("transactional_db")

ORIGINAL = "You can return an item within 30 days."
CORRECTED = "You can return an item within 60 days with the receipt."
XSS = "<script>alert(1)</script>"
REVIEW_URL = re.compile(r"/review/(\d+)/")


def ingest(*records: dict) -> list[ReviewItem]:
    """Stores and routes `records` (low confidence by default); returns their review items."""
    defaults = {"input": "What's your return policy?", "output": ORIGINAL, "confidence": 0.3}
    result = interactions_ingest(
        records=enumerate({**defaults, **r} for r in records), source="e2e", batch_size=500
    )
    assert not result.errors, result.errors
    ids = [r["external_id"] for r in records]
    items = {
        i.interaction.external_id: i
        for i in ReviewItem.objects.filter(interaction__external_id__in=ids).select_related(
            "interaction"
        )
    }
    return [items[external_id] for external_id in ids]


def support_items(n: int, **fields) -> list[ReviewItem]:
    """`n` low-confidence items of the support bot; the first has the lowest confidence, so
    the claim hands them out in order."""
    AgentFactory(slug="support-bot", name="Support bot", domain="support")
    return ingest(
        *(
            {"external_id": f"s-{i}", "agent": "support-bot", "confidence": 0.1 + i / 100, **fields}
            for i in range(n)
        )
    )


def sign_in(page: Page, base_url: str, username: str, next_url: str = "/") -> Page:
    page.goto(f"{base_url}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}{next_url}")
    return page


def start_reviewing(page: Page) -> int:
    """Clicks "Start reviewing" on My queue; returns the id of the item it opened."""
    page.get_by_role("button", name="Start reviewing").click()
    page.wait_for_url(REVIEW_URL)
    return int(REVIEW_URL.search(page.url).group(1))


def write_correction(page: Page, item_id: int, text: str) -> None:
    """Opens the editor with `c` and replaces the answer by typing `text` (keyup events, as a
    person typing: they drive the live diff)."""
    page.keyboard.press("c")
    area = page.locator(f"#correction-{item_id}")
    expect(area).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(text)


def status_of(item: ReviewItem) -> str:
    return ReviewItem.objects.values_list("status", flat=True).get(pk=item.pk)


# --- logging in and claiming ---------------------------------------------------------------


def test_it_logs_in_through_the_form_and_follows_next(page, live_server, reviewer):
    page.goto(f"{live_server.url}/queue/")
    page.wait_for_url(f"{live_server.url}/accounts/login/?next=/queue/")

    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()

    page.wait_for_url(f"{live_server.url}/queue/")
    expect(page.get_by_role("heading", name="My queue")).to_be_visible()
    expect(page.locator(".topbar .who")).to_contain_text("rita")


def test_it_claims_the_next_item_with_start_reviewing(login, reviewer):
    first, _ = support_items(2)
    page = login("rita", next_url="/queue/")
    expect(page.locator(".big-number")).to_contain_text("2 items ready for you")

    assert start_reviewing(page) == first.pk

    expect(page.get_by_role("heading", name=f"Item #{first.pk}")).to_be_visible()
    expect(page.locator(".lease")).to_contain_text("Held for you")
    first.refresh_from_db()
    assert (first.status, first.claimed_by_id) == ("claimed", reviewer.pk)


# --- deciding -------------------------------------------------------------------------------


def test_it_approves_with_the_keyboard_and_swaps_in_the_next_item(login, reviewer):
    first, second = support_items(2)
    page = login("rita", next_url="/queue/")
    start_reviewing(page)
    # A full page load would wipe this; an htmx swap keeps it.
    page.evaluate("window.__e2eMarker = 'same document'")

    page.keyboard.press("a")

    page.wait_for_url(f"**/review/{second.pk}/")
    expect(page.get_by_role("heading", name=f"Item #{second.pk}")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Approved. Next item…")
    assert page.evaluate("window.__e2eMarker") == "same document"
    assert status_of(first) == "done"
    assert Review.objects.get(item=first).verdict == "approve"
    assert status_of(second) == "claimed"


def test_it_corrects_with_a_live_diff_and_ctrl_enter(login, reviewer):
    (item,) = support_items(1)
    page = login("rita", next_url="/queue/")
    start_reviewing(page)

    write_correction(page, item.pk, CORRECTED)

    diff = page.locator(f"#diff-{item.pk}")
    expect(diff.locator("ins")).to_contain_text(["60"])
    expect(diff.locator("del")).to_contain_text(["30"])
    expect(diff).to_contain_text("+4 words")
    page.keyboard.press("ControlOrMeta+Enter")

    expect(page.get_by_role("heading", name="Your queue is clear")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Correction saved.")
    pair = TrainingPair.objects.get(item=item)
    assert (pair.source, pair.output, pair.rejected_output) == ("correct", CORRECTED, ORIGINAL)
    assert status_of(item) == "done"


def test_it_sends_a_four_eyes_disagreement_to_adjudication(
    page, new_context, live_server, reviewer, other_reviewer, lead
):
    AgentFactory(slug="refund-bot", name="Refund bot", domain="support", required_reviews=2)
    (item,) = ingest({"external_id": "r-1", "agent": "refund-bot"})
    assert item.required_reviews == 2

    rita = sign_in(page, live_server.url, "rita", "/queue/")
    start_reviewing(rita)
    rita.keyboard.press("a")
    expect(rita.get_by_role("status")).to_contain_text("a second reviewer will check")

    oscar = sign_in(new_context().new_page(), live_server.url, "oscar", "/queue/")
    assert start_reviewing(oscar) == item.pk
    expect(oscar.locator(".chip-warn")).to_have_text("Second review")
    oscar.keyboard.press("r")
    expect(oscar.get_by_role("status")).to_contain_text("a review lead will adjudicate")
    assert status_of(item) == "disputed"

    lee = sign_in(new_context().new_page(), live_server.url, "lee", "/console/adjudication/")
    lee.get_by_role("link", name="Adjudicate").click()
    reviews = lee.locator(".review-card")
    expect(reviews).to_have_count(2)
    expect(reviews.nth(0)).to_contain_text("Approve")
    expect(reviews.nth(1)).to_contain_text("Reject")
    lee.get_by_role("button", name="Reject").click()

    expect(lee.get_by_role("status")).to_contain_text(
        f"Item #{item.pk} rejected. That decision is final."
    )
    expect(lee.get_by_role("heading", name="No disputes")).to_be_visible()
    item.refresh_from_db()
    assert (item.status, item.final_verdict) == ("done", "reject")
    # Final: the item is read-only for the lead too, and back in no one's queue.
    lee.goto(f"{live_server.url}/console/adjudication/{item.pk}/")
    expect(lee.get_by_text("This item is not awaiting adjudication")).to_be_visible()
    expect(lee.locator("[data-verdict-key]")).to_have_count(0)


def test_it_refuses_a_decision_after_the_hold_ended_and_keeps_the_text(login, reviewer):
    (item,) = support_items(1)
    page = login("rita", next_url="/queue/")
    start_reviewing(page)
    write_correction(page, item.pk, CORRECTED)
    expect(page.locator(f"#diff-{item.pk} ins")).not_to_have_count(0)

    ReviewItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    page.keyboard.press("ControlOrMeta+Enter")

    problem = page.locator(f"#screen-{item.pk} .alert-bad")
    expect(problem).to_contain_text(
        "Your hold on this item ended (it expired or was released), so this decision was not saved."
    )
    expect(problem).to_contain_text("Everything you typed is below")
    expect(page.get_by_role("button", name="Claim again")).to_be_visible()
    expect(page.locator(f"#correction-{item.pk}")).to_have_value(CORRECTED)
    assert not Review.objects.filter(item=item).exists()
    assert not TrainingPair.objects.filter(item=item).exists()


# --- safety and help ------------------------------------------------------------------------


def test_it_shows_agent_markup_as_text_without_running_it(login, reviewer):
    dialogs: list[str] = []
    (item,) = support_items(1, output=XSS, input='<img src="x" onerror="alert(2)">')
    page = login("rita", next_url="/queue/")
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    start_reviewing(page)

    expect(page.locator(f"#answer-{item.pk} [data-original]")).to_have_text(XSS)
    expect(page.locator(".turn-current .bubble")).to_have_text('<img src="x" onerror="alert(2)">')
    # The diff fragment (swapped in by htmx) escapes it too.
    write_correction(page, item.pk, "Safe answer.")
    expect(page.locator(f"#diff-{item.pk} del")).to_have_text(XSS)

    assert page.locator("main script").count() == 1  # review.js, nothing from the agent
    assert page.locator("main img").count() == 0
    assert dialogs == []


def test_it_opens_the_shortcuts_overlay_with_question_mark(login, reviewer):
    support_items(1)
    page = login("rita", next_url="/queue/")
    start_reviewing(page)
    overlay = page.locator("#shortcuts")
    expect(overlay).to_be_hidden()

    page.keyboard.press("?")

    expect(overlay).to_be_visible()
    expect(overlay.get_by_role("heading", name="Keyboard shortcuts")).to_be_visible()
    expect(overlay).to_contain_text("Correct: edit the answer in place")
    page.keyboard.press("Escape")
    expect(overlay).to_be_hidden()


# --- screenshots for the README ---------------------------------------------------------------


def ago(**delta) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


def test_it_summarises_my_queue_by_agent_reason_and_age(login, screenshot, reviewer, lead):
    reviewer.reviewer_profile.domains = ["support", "legal", "retail"]
    reviewer.reviewer_profile.save()
    AgentFactory(slug="support-bot", name="Support assistant", domain="support", audit_rate=1.0)
    AgentFactory(
        slug="legal-bot", name="Legal advisor", domain="legal", review_intents=["termination"]
    )
    AgentFactory(slug="shop-recs", name="Product recommender", domain="retail", kind="recommender")
    questions = [
        ("support-bot", "My parcel says delivered but it isn't here.", "", 0.42, {"minutes": 20}),
        ("support-bot", "How do I change the address on my order?", "", 0.91, {"hours": 3}),
        ("support-bot", "Can I pay with two cards?", "", 0.55, {"days": 2}),
        ("support-bot", "Why was I charged twice?", "", 0.38, {"days": 9}),
        (
            "legal-bot",
            "Can my employer end my contract by e-mail?",
            "termination",
            0.88,
            {"hours": 5},
        ),
        ("legal-bot", "Is a 5-year non-compete enforceable?", "", 0.61, {"days": 3}),
        (
            "legal-bot",
            "Do I have to give notice during probation?",
            "termination",
            0.8,
            {"days": 12},
        ),
        ("shop-recs", "searched “espresso machine”", "", 0.35, {"minutes": 45}),
        ("shop-recs", "viewed “trail running shoes”", "", 0.49, {"days": 1, "hours": 2}),
    ]
    records = [
        {
            "external_id": f"q-{i}-{n}",
            "agent": agent,
            "input": question,
            "output": "…",
            "intent": intent,
            "confidence": max(0.05, confidence - n / 50),
            "created_at": ago(**age),
        }
        for i, (agent, question, intent, confidence, age) in enumerate(questions)
        for n in range(1 + i % 3)
    ]
    items = ingest(*records)
    assignment.items_assign(
        items=ReviewItem.objects.filter(pk__in=[i.pk for i in items[:5]]),
        reviewer=reviewer,
        actor=lead,
    )

    page = login("rita", next_url="/queue/")

    expect(page.locator(".big-number")).to_contain_text(f"{len(items)} items ready for you")
    by_agent = page.locator("section", has=page.get_by_role("heading", name="By agent"))
    expect(by_agent.locator("li")).to_have_count(3)
    by_reason = page.locator("section", has=page.get_by_role("heading", name="By reason"))
    expect(by_reason).to_contain_text("Low confidence")
    expect(by_reason).to_contain_text("Audit sample")
    expect(by_reason).to_contain_text("Rule")
    expect(page.get_by_role("heading", name="Assigned to me")).to_contain_text("(5)")
    screenshot("queue", full_page=True)


RTL_QUESTION = "هل يمكنني الحصول على استرداد كامل؟"
RTL_ANSWER = (
    "نعم، يمكنك إرجاع الغلاية خلال 30 يومًا من الاستلام والحصول على استرداد كامل.\n"
    "Your order A-10293 qualifies: we will e-mail you a prepaid return label."
)


def test_it_shows_a_multi_turn_conversation_with_rtl_text_and_metadata(login, screenshot, reviewer):
    AgentFactory(
        slug="support-bot",
        name="Support assistant",
        domain="support",
        guidelines="Approve when the answer follows the returns policy v3.",
    )
    (item,) = ingest(
        {
            "external_id": "conv-7",
            "agent": "support-bot",
            "agent_version": "2026.11.3",
            "conversation_id": "c-5521",
            "intent": "refund_request",
            "sentiment": -0.4,
            "turns": 5,
            "confidence": 0.46,
            "created_at": ago(minutes=35),
            "context": [
                {"role": "system", "content": "You are Acme's support assistant."},
                {"role": "user", "content": "Hi, the kettle I ordered last week arrived broken."},
                {"role": "assistant", "content": "Sorry to hear that! What's your order number?"},
                {"role": "tool", "content": '{"order": "A-10293", "delivered_days_ago": 6}'},
                {"role": "user", "content": "مرحبا، رقم الطلب هو A-10293. هل يمكنني إرجاعها؟"},
            ],
            "input": RTL_QUESTION,
            "output": RTL_ANSWER,
            "metadata": {
                "channel": "web",
                "locale": "ar-EG",
                "order_id": "A-10293",
                "retrieval": {"docs": ["returns-policy-v3", "damaged-goods"], "latency_ms": 412},
            },
        }
    )
    page = login("rita", next_url="/queue/")
    start_reviewing(page)

    expect(page.locator(".transcript .turn")).to_have_count(5)
    question = page.locator(".turn-current .bubble")
    expect(question).to_have_text(RTL_QUESTION)
    assert question.evaluate("el => getComputedStyle(el).direction") == "rtl"
    metadata = page.locator(".metadata")
    expect(metadata.get_by_role("row", name="locale")).to_contain_text("ar-EG")
    expect(metadata).to_contain_text("returns-policy-v3")
    expect(page.locator(f"#answer-{item.pk} [data-original]")).to_contain_text("A-10293")
    screenshot("review", full_page=True)
