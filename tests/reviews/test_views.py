"""The reviewer's pages: my queue, the review screen (plain and htmx), adjudication."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reviews import services
from reviews.models import Review, ReviewItem
from tests.factories import AgentFactory, ReviewFactory, ReviewItemFactory, UserFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def agent():
    return AgentFactory(slug="support-bot", name="Support bot", domain="support")


def claim(user, **kwargs):
    item = services.item_claim(reviewer=user, **kwargs)
    assert item is not None
    return item


def expire(item):
    ReviewItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


def decide_url(item):
    return f"/review/{item.pk}/decide"


def logged_in(client, user):
    client.force_login(user)
    return client


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/queue/", "/review/1/"])
def test_it_sends_anonymous_users_to_the_login_page_with_next(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_it_forbids_the_queue_to_users_without_the_reviewer_role(client, ml, lead, agent):
    ReviewItemFactory(interaction__agent=agent)
    for user in (ml, lead):
        response = logged_in(client, user).get("/queue/")
        assert response.status_code == 403
        assert b"<h1>Not allowed</h1>" in response.content
    assert client.post("/queue/claim").status_code == 403
    assert ReviewItem.objects.get().status == "pending"  # nothing was claimed


def test_it_forbids_the_review_screen_to_ml_engineers(client, ml, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    response = logged_in(client, ml).get(f"/review/{item.pk}/")
    assert response.status_code == 403
    assert b"<h1>Not allowed</h1>" in response.content
    assert item.interaction.output.encode() not in response.content


def test_it_sends_a_reviewer_from_home_to_their_queue(client, reviewer):
    response = logged_in(client, reviewer).get("/")
    assert response.status_code == 302 and response["Location"] == "/queue/"


def test_it_sends_an_admin_who_also_reviews_from_home_to_the_console(client):
    both = UserFactory(username="ada", roles=["reviewer", "admin"], domains=["support"])
    response = logged_in(client, both).get("/")
    assert response.status_code == 302 and response["Location"] == "/console/"


def test_it_sends_an_ml_engineer_from_home_to_the_exports(client, ml):
    response = logged_in(client, ml).get("/")
    assert response.status_code == 302 and response["Location"] == "/exports/"


def test_it_shows_the_backlog_on_home_to_a_user_without_a_role(client):
    response = logged_in(client, UserFactory(username="nobody")).get("/")
    assert response.status_code == 200
    assert b"Review backlog" in response.content


def test_it_refuses_get_on_the_decision_endpoint(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    response = logged_in(client, reviewer).get(decide_url(item))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert ReviewItem.objects.get(pk=item.pk).status == "claimed"


# --- my queue -------------------------------------------------------------------------------


def test_it_counts_the_items_i_may_claim_by_agent_reason_and_age(client, reviewer, other_reviewer):
    support = AgentFactory(slug="support-bot", name="Support bot", domain="support")
    shop = AgentFactory(slug="shop-bot", name="Shop bot", domain="support")
    now = timezone.now()
    ReviewItemFactory(interaction__agent=support, created_at=now - timedelta(minutes=5))
    ReviewItemFactory(interaction__agent=support, created_at=now - timedelta(hours=3))
    ReviewItemFactory(
        interaction__agent=shop, reason="audit_sample", created_at=now - timedelta(days=3)
    )
    ReviewItemFactory(
        interaction__agent=support,
        interaction__domain="legal",
        assigned_to=reviewer,
        created_at=now - timedelta(days=30),
    )
    # Not mine: another pool, assigned to someone else, already reviewed by me, decided.
    ReviewItemFactory(interaction__agent=support, interaction__domain="legal")
    ReviewItemFactory(interaction__agent=support, assigned_to=other_reviewer)
    reviewed = ReviewItemFactory(interaction__agent=support)
    ReviewFactory(item=reviewed, reviewer=reviewer, skipped=True)
    ReviewItemFactory(interaction__agent=support, done=True)

    response = logged_in(client, reviewer).get("/queue/")

    assert response.status_code == 200
    summary = response.context["summary"]
    assert summary["total"] == 4
    assert [(a["slug"], a["n"]) for a in summary["by_agent"]] == [
        ("support-bot", 3),
        ("shop-bot", 1),
    ]
    assert [(r["reason"], r["n"]) for r in summary["by_reason"]] == [
        ("low_confidence", 3),
        ("audit_sample", 1),
    ]
    assert [(b["key"], b["n"]) for b in summary["by_age"]] == [
        ("hour", 1),
        ("day", 1),
        ("week", 1),
        ("older", 1),
    ]
    assert b"Start reviewing" in response.content


def test_it_filters_the_counts_by_agent(client, reviewer):
    support = AgentFactory(slug="support-bot", domain="support")
    shop = AgentFactory(slug="shop-bot", domain="support")
    ReviewItemFactory(interaction__agent=support)
    ReviewItemFactory(interaction__agent=shop)
    ReviewItemFactory(interaction__agent=shop)
    response = logged_in(client, reviewer).get("/queue/?agent=shop-bot")
    assert response.context["summary"]["total"] == 2
    assert b'<input type="hidden" name="agent" value="shop-bot">' in response.content


def test_it_answers_the_filter_form_with_the_queue_fragment_for_htmx(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    response = logged_in(client, reviewer).get("/queue/", **HTMX)
    html = response.content.decode()
    # htmx takes the document title from a <title> at the root of the answer.
    assert re.match(rf'\s*<title>My queue · Coachdesk</title><div id="queue-{reviewer.pk}"', html)
    assert "<html" not in html


def test_it_lists_the_items_assigned_to_me_25_per_page(client, reviewer, agent):
    for _ in range(26):
        ReviewItemFactory(interaction__agent=agent, assigned_to=reviewer)
    client = logged_in(client, reviewer)
    first = client.get("/queue/")
    assert len(first.context["page"].object_list) == 25
    assert 'href="?page=2"' in first.content.decode()
    assert len(client.get("/queue/?page=2").context["page"].object_list) == 1


def test_it_shows_an_empty_state_when_nothing_is_waiting(client, reviewer):
    response = logged_in(client, reviewer).get("/queue/")
    assert b"All caught up" in response.content


def test_it_tells_a_reviewer_without_a_pool_how_to_join_one(client):
    loner = UserFactory(username="lonnie", roles=["reviewer"])
    response = logged_in(client, loner).get("/queue/")
    assert b"not in a review pool yet" in response.content


def test_it_starts_reviewing_by_claiming_the_next_item(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.6)
    low = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    response = logged_in(client, reviewer).post("/queue/claim")
    assert response.status_code == 302
    assert response["Location"] == f"/review/{low.pk}/"
    low.refresh_from_db()
    assert (low.status, low.claimed_by) == ("claimed", reviewer)


def test_it_carries_the_filters_to_the_review_screen(client, reviewer, agent):
    shop = AgentFactory(slug="shop-bot", domain="support")
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    wanted = ReviewItemFactory(interaction__agent=shop, interaction__confidence=0.9)
    response = logged_in(client, reviewer).post("/queue/claim", {"agent": "shop-bot"})
    assert response["Location"] == f"/review/{wanted.pk}/?agent=shop-bot"


def test_it_resumes_the_item_i_hold_instead_of_claiming_another(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    ReviewItemFactory(interaction__agent=agent)
    held = claim(reviewer)
    response = logged_in(client, reviewer).post("/queue/claim")
    assert response["Location"] == f"/review/{held.pk}/"
    assert ReviewItem.objects.filter(status="claimed").count() == 1


def test_it_says_so_when_there_is_nothing_to_claim(client, reviewer):
    response = logged_in(client, reviewer).post("/queue/claim", follow=True)
    assert response.redirect_chain == [("/queue/", 302)]
    assert b"Nothing left to review" in response.content


def test_it_claims_the_same_item_again_after_a_lost_hold(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.5)
    item = claim(reviewer)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)  # more urgent
    expire(item)
    response = logged_in(client, reviewer).post("/queue/claim", {"item": item.pk})
    assert response["Location"] == f"/review/{item.pk}/"
    item.refresh_from_db()
    assert (item.status, item.claimed_by) == ("claimed", reviewer)
    assert item.lease_expires_at > timezone.now()


def test_it_says_the_item_was_taken_and_gives_the_next_one(client, reviewer, other_reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    item = claim(reviewer)
    expire(item)
    services.leases_expire()
    assert claim(other_reviewer).pk == item.pk
    following = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.5)
    response = logged_in(client, reviewer).post("/queue/claim", {"item": item.pk}, follow=True)
    assert response.redirect_chain == [(f"/review/{following.pk}/", 302)]
    assert f"Item #{item.pk} was taken in the meantime; here is your next one." in (
        response.content.decode()
    )
    assert ReviewItem.objects.get(pk=item.pk).claimed_by == other_reviewer


def test_it_says_the_item_was_taken_when_nothing_else_waits(
    client, reviewer, other_reviewer, agent
):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    expire(item)
    services.leases_expire()
    claim(other_reviewer)
    response = logged_in(client, reviewer).post("/queue/claim", {"item": item.pk}, follow=True)
    assert response.redirect_chain == [("/queue/", 302)]
    html = response.content.decode()
    assert f"Item #{item.pk} was taken in the meantime, and nothing else is waiting." in html
    assert "Nothing left to review" not in html


def test_it_resumes_the_item_i_hold_rather_than_claim_again(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    lost = claim(reviewer)
    expire(lost)
    held = claim(reviewer)  # e.g. in another tab
    assert held.pk != lost.pk
    response = logged_in(client, reviewer).post("/queue/claim", {"item": lost.pk}, follow=True)
    assert response.redirect_chain == [(f"/review/{held.pk}/", 302)]
    assert f"You already hold item #{held.pk}: finish it first." in response.content.decode()


def test_it_sends_claim_again_with_the_item_of_the_lost_hold(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    expire(item)
    html = logged_in(client, reviewer).get(f"/review/{item.pk}/").content.decode()
    claim_again = html[html.index('action="/queue/claim"') :]
    assert claim_again.index(f'name="item" value="{item.pk}"') < claim_again.index("Claim again")


# --- the review screen ------------------------------------------------------------------------


def test_it_shows_the_item_i_hold(client, reviewer):
    agent = AgentFactory(slug="support-bot", domain="support", guidelines="## Be kind")
    ReviewItemFactory(
        interaction__agent=agent,
        interaction__input="Where is my parcel?",
        interaction__context=[
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ],
        interaction__metadata={"channel": "web"},
        reason_detail="confidence 0.50 < 0.70",
    )
    item = claim(reviewer)
    html = logged_in(client, reviewer).get(f"/review/{item.pk}/").content.decode()
    for text in [
        "Where is my parcel?",
        "Hello!",
        "channel",
        "web",
        "## Be kind",
        "confidence 0.50 &lt; 0.70",
        'name="version" value="1"',
        "data-lease-expires",
        'data-verdict-key="a"',
        "coachdesk/review.js",
        'hx-trigger="keyup changed delay:300ms',  # the live diff
        'hx-trigger="every 60s, submit"',  # the hold is renewed while the page is open
    ]:
        assert text in html
    assert 'class="turn turn-assistant"' in html


def test_it_escapes_agent_text_everywhere_on_the_review_screen(client, reviewer):
    agent = AgentFactory(slug="support-bot", domain="support", guidelines=XSS)
    ReviewItemFactory(
        interaction__agent=agent,
        interaction__output=XSS,
        interaction__input=XSS,
        interaction__context=[{"role": "user", "content": XSS}],
        interaction__metadata={XSS: XSS},
        reason_detail=XSS,
    )
    item = claim(reviewer)
    html = logged_in(client, reviewer).get(f"/review/{item.pk}/").content.decode()
    assert XSS not in html
    # input, output, the editor, the turn, metadata key and value, reason detail, guidelines
    assert html.count(XSS_ESCAPED) >= 8
    assert 'dir="auto"' in html


def test_it_hides_my_item_from_other_reviewers(client, reviewer, other_reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    client = logged_in(client, other_reviewer)
    mine = client.get(f"/review/{item.pk}/")
    missing = client.get("/review/999999/")
    assert mine.status_code == missing.status_code == 404
    assert item.interaction.output.encode() not in mine.content
    assert client.post(decide_url(item), {"verdict": "approve"}).status_code == 404
    assert client.post(f"/review/{item.pk}/diff", {"corrected_output": "x"}).status_code == 404
    assert not Review.objects.exists()


def test_it_shows_an_item_read_only_to_an_admin(client, reviewer, lead, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    response = logged_in(client, lead).get(f"/review/{item.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Read-only" in html and "held by rita" in html
    assert 'name="verdict"' not in html
    assert "hx-post" not in html.split('id="decision-')[1]


def test_it_shows_earlier_reviews_on_a_second_review(client):
    legal = AgentFactory(slug="legal-bot", domain="legal", required_reviews=2)
    first = UserFactory(username="lena", roles=["reviewer"], domains=["legal"])
    second = UserFactory(username="lars", roles=["reviewer"], domains=["legal"])
    ReviewItemFactory(interaction__agent=legal, interaction__domain="legal")
    item = claim(first)
    decision = services.decision_validate(
        item=item,
        verdict="correct",
        corrected_output="Ask the legal team.",
        error_category="policy-legal-risk",
        notes="Too confident",
    )
    services.review_submit(item=item, reviewer=first, decision=decision)
    item = claim(second)
    html = logged_in(client, second).get(f"/review/{item.pk}/").content.decode()
    for text in [
        "Earlier reviews",
        "Second review",
        "lena",
        "Ask the legal team.",
        "Policy / legal risk",
        "Too confident",
    ]:
        assert text in html


# --- deciding -------------------------------------------------------------------------------


def test_it_decides_with_a_plain_post_and_redirects_to_the_next_item(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    after = ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.5)
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        decide_url(item), {"verdict": "approve", "version": item.version, "seconds_spent": "42"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/review/{after.pk}/"
    review = Review.objects.get(item=item)
    assert (review.verdict, review.seconds_spent) == ("approve", 42)
    item.refresh_from_db()
    assert item.status == "done"


def test_it_redirects_to_the_queue_after_the_last_item(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        decide_url(item), {"verdict": "reject", "version": item.version}, follow=True
    )
    assert response.redirect_chain == [("/queue/", 302)]
    html = response.content.decode()
    assert "Rejected." in html and "Your queue is clear." in html


def test_it_decides_with_htmx_and_answers_with_the_next_item(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    after = ReviewItemFactory(
        interaction__agent=agent, interaction__input="Next question", interaction__confidence=0.5
    )
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        decide_url(item), {"verdict": "approve", "version": item.version}, **HTMX
    )
    assert response.status_code == 200
    assert response["HX-Push-Url"] == f"/review/{after.pk}/"
    html = response.content.decode()
    assert re.match(
        rf'\s*<title>Item #{after.pk} · Coachdesk</title><section id="screen-{after.pk}"', html
    )
    assert "<html" not in html
    assert "Approved. Next item…" in html
    assert "Next question" in html
    assert f'data-decided="{item.pk}"' in html
    after.refresh_from_db()
    assert (after.status, after.claimed_by) == ("claimed", reviewer)


def test_it_keeps_the_filters_for_the_next_item(client, reviewer, agent):
    shop = AgentFactory(slug="shop-bot", domain="support")
    ReviewItemFactory(interaction__agent=shop, interaction__confidence=0.1)
    ReviewItemFactory(
        interaction__agent=agent, interaction__confidence=0.2
    )  # another agent: not next
    wanted = ReviewItemFactory(interaction__agent=shop, interaction__confidence=0.9)
    item = claim(reviewer, agent_id=shop.pk)
    response = logged_in(client, reviewer).post(
        decide_url(item),
        {"verdict": "approve", "version": item.version, "agent": "shop-bot"},
        **HTMX,
    )
    assert response["HX-Push-Url"] == f"/review/{wanted.pk}/?agent=shop-bot"


def test_it_answers_htmx_with_the_queue_is_clear_fragment(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        decide_url(item), {"verdict": "skip", "version": item.version}, **HTMX
    )
    assert response["HX-Push-Url"] == "/queue/"
    html = response.content.decode()
    assert 'id="screen-clear"' in html and "Your queue is clear" in html
    assert "Skipped" in html


def test_it_saves_a_correction_with_its_category_and_notes(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    logged_in(client, reviewer).post(
        decide_url(item),
        {
            "verdict": "correct",
            "version": item.version,
            "corrected_output": "Returns are free within 30 days.\r\nKeep the receipt.",
            "error_category": "incomplete",
            "notes": "Missing the receipt",
        },
    )
    review = Review.objects.get()
    assert review.corrected_output == "Returns are free within 30 days.\nKeep the receipt."
    assert (review.error_category.slug, review.notes) == ("incomplete", "Missing the receipt")


def test_it_keeps_the_typed_text_when_a_correction_is_invalid(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        decide_url(item),
        {
            "verdict": "correct",
            "version": item.version,
            "corrected_output": "   ",
            "error_category": "tone",
            "notes": "My careful notes",
        },
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200  # htmx swaps only 2xx
    assert "Corrected output is required to correct" in html
    assert "My careful notes" in html
    assert '<option value="tone" selected>' in html
    assert "screen editing" in html or 'editing"' in html
    assert not Review.objects.exists()


@pytest.mark.parametrize("headers", [HTMX, {}], ids=["htmx", "page"])
def test_it_refuses_a_correction_over_the_limit_with_both_figures(
    client, reviewer, agent, monkeypatch, headers
):
    from reviews import selectors

    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    # Neither the form nor the screen's diff tokenises the over-limit text.
    monkeypatch.setattr(selectors, "_TOKEN", None)
    response = logged_in(client, reviewer).post(
        decide_url(item),
        {"verdict": "correct", "version": item.version, "corrected_output": "a." * 12_506 + "x"},
        **headers,
    )
    html = response.content.decode()
    assert response.status_code == (200 if headers else 400)
    assert "Your corrected answer is 25,013 characters; the limit is 20,000." in html
    assert not Review.objects.exists()


def test_it_refuses_notes_over_their_limit_with_both_figures(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        decide_url(item), {"verdict": "reject", "version": item.version, "notes": "n" * 5_001}
    )
    assert response.status_code == 400
    assert b"Your notes are 5,001 characters; the limit is 5,000." in response.content
    assert not Review.objects.exists()


def test_it_counts_a_posted_crlf_as_one_character(client, reviewer, agent, settings):
    settings.INGEST_MAX_TEXT_CHARS = 30
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    text = "one line\r\n" * 3  # 30 characters as posted, 27 once normalised
    response = logged_in(client, reviewer).post(
        decide_url(item),
        {"verdict": "correct", "version": item.version, "corrected_output": text + "abc"},
    )
    assert response.status_code == 302
    assert Review.objects.get().corrected_output == "one line\n" * 3 + "abc"


def test_it_keeps_the_typed_text_when_an_unknown_category_is_sent(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        decide_url(item),
        {
            "verdict": "correct",
            "version": item.version,
            "corrected_output": "Better answer",
            "error_category": "nope",
        },
    )
    assert response.status_code == 400
    assert b"Better answer" in response.content
    assert b"Select a valid choice" in response.content


def test_it_keeps_the_typed_text_when_the_hold_ended(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    expire(item)
    services.leases_expire()  # swept: the item is back in the queue, no longer mine
    response = logged_in(client, reviewer).post(
        decide_url(item),
        {
            "verdict": "correct",
            "version": item.version,
            "corrected_output": "My <b>rewritten</b> answer",
            "error_category": "tone",
            "notes": "Took a while",
        },
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "Your hold on this item ended" in html
    assert "My &lt;b&gt;rewritten&lt;/b&gt; answer" in html
    assert "Took a while" in html and '<option value="tone" selected>' in html
    assert "Claim again" in html
    assert 'name="verdict"' not in html  # not yours to decide: no verdict buttons at all
    assert not Review.objects.exists()


def test_it_answers_409_to_a_plain_post_when_the_hold_ended(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    expire(item)
    response = logged_in(client, reviewer).post(
        decide_url(item),
        {"verdict": "correct", "corrected_output": "Mine", "version": item.version},
    )
    assert response.status_code == 409
    assert b"Mine" in response.content


def test_it_brings_a_stale_page_up_to_date_without_losing_the_text(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    old_version = item.version
    expire(item)
    again = claim(reviewer)  # the lease ran out and I claimed the same item again
    assert again.pk == item.pk
    response = logged_in(client, reviewer).post(
        decide_url(item),
        {
            "verdict": "correct",
            "version": old_version,
            "corrected_output": "Keep me",
        },
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert "out of date" in html and "Keep me" in html
    assert f'name="version" value="{again.version}"' in html
    assert not Review.objects.exists()


# --- lease and diff -------------------------------------------------------------------------


def test_it_renews_the_hold(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    ReviewItem.objects.filter(pk=item.pk).update(
        lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    response = logged_in(client, reviewer).post(f"/review/{item.pk}/lease", **HTMX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith(f'<div id="lease-{item.pk}"')
    assert b'hx-trigger="every 60s, submit"' in response.content
    item.refresh_from_db()
    assert item.lease_expires_at > timezone.now() + timedelta(minutes=14)


def test_it_answers_a_renewal_of_a_lost_hold_with_a_banner(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    expire(item)
    response = logged_in(client, reviewer).post(f"/review/{item.pk}/lease", **HTMX)
    assert b"hold on this item has ended" in response.content
    assert b"hx-trigger" not in response.content  # polling stops


def test_it_renews_the_hold_without_javascript(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    before = item.lease_expires_at
    response = logged_in(client, reviewer).post(f"/review/{item.pk}/lease")
    assert response.status_code == 302 and response["Location"] == f"/review/{item.pk}/"
    assert ReviewItem.objects.get(pk=item.pk).lease_expires_at > before


def test_it_diffs_a_correction_word_by_word(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__output="Returns within 30 days.")
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        f"/review/{item.pk}/diff", {"corrected_output": "Returns within 14 <days>."}, **HTMX
    )
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div id="diff-{item.pk}"')
    assert "<del>30</del>" in html
    assert "<ins>14</ins>" in html
    assert "<ins>&lt;</ins><span>days</span><ins>&gt;</ins>" in html  # escaped, still a diff
    assert "<days>" not in html
    assert "+1 word<" in html and "−1 word<" in html


def test_it_shows_the_diff_in_the_page_without_javascript(client, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__output="Returns within 30 days.")
    item = claim(reviewer)
    response = logged_in(client, reviewer).post(
        f"/review/{item.pk}/diff", {"corrected_output": "Returns within 14 days.", "notes": "n1"}
    )
    html = response.content.decode()
    assert "<html" in html and "<ins>14</ins>" in html
    assert "Returns within 14 days." in html and "n1" in html


# --- query counts: flat whatever the size of the queue ----------------------------------------


def count_queries(client, path):
    client.get(path)  # warm up the session
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


def test_it_renders_the_queue_with_the_same_queries_for_3_and_30_items(client, reviewer, agent):
    agents = [AgentFactory(slug=f"bot-{i}", domain="support") for i in range(3)]
    client = logged_in(client, reviewer)

    def add(n):
        for i in range(n):
            ReviewItemFactory(
                interaction__agent=agents[i % 3],
                reason=["low_confidence", "rule"][i % 2],
                assigned_to=reviewer if i % 3 == 0 else None,
            )

    add(3)
    small = count_queries(client, "/queue/")
    add(27)
    large = count_queries(client, "/queue/")
    assert small == large
    assert large <= 11


def test_it_renders_the_review_screen_with_the_same_queries_for_1_and_5_reviews(
    client, reviewer, agent
):
    client = logged_in(client, reviewer)
    counts = []
    for n in (1, 5):
        item = ReviewItemFactory(interaction__agent=agent)
        for i in range(n):
            ReviewFactory(
                item=item,
                reviewer=UserFactory(username=f"peer{n}-{i}", roles=["reviewer"]),
                corrected=True,
                corrected_output=f"Fix {i}",
            )
        claimed = claim(reviewer)
        assert claimed.pk == item.pk
        counts.append(count_queries(client, f"/review/{item.pk}/"))
        services.review_submit(
            item=claimed,
            reviewer=reviewer,
            decision=services.decision_validate(item=claimed, verdict="skip"),
        )
    assert counts[0] == counts[1]
    assert counts[0] <= 8
