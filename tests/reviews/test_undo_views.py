"""The reviewer's way back: the Undo toast after a decision (plain and htmx), My recent
decisions, and reading an item that is still as my decision left it."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from reviews import services
from reviews.models import Review, ReviewItem
from tests.factories import AgentFactory, ReviewFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def agent():
    return AgentFactory(slug="support-bot", name="Support bot", domain="support")


@pytest.fixture
def rita(client, reviewer):
    client.force_login(reviewer)
    return client


def claim(user, **kwargs):
    item = services.item_claim(reviewer=user, **kwargs)
    assert item is not None
    return item


def decide(client, item, verdict="approve", **fields):
    data = {"verdict": verdict, "version": item.version, **fields}
    return client.post(f"/review/{item.pk}/decide", data)


def age(item, seconds: int = 61) -> None:
    Review.objects.filter(item=item).update(created_at=timezone.now() - timedelta(seconds=seconds))


def toast(html: str) -> str:
    found = re.search(r'<div id="undo-toast".*?</div>', html, re.S)
    return found.group(0) if found else ""


# --- the toast --------------------------------------------------------------------------------


def test_it_offers_undo_on_the_next_screen_after_a_plain_decision(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    item = claim(reviewer)

    response = rita.post(
        f"/review/{item.pk}/decide", {"verdict": "approve", "version": item.version}, follow=True
    )

    undo = toast(response.content.decode())
    assert f"Approved item #{item.pk}" in undo
    assert f'action="/review/{item.pk}/undo"' in undo
    assert 'name="csrfmiddlewaretoken"' in undo and 'aria-keyshortcuts="u"' in undo
    assert f'hx-post="/review/{item.pk}/undo"' in undo  # the review screen uses htmx


def test_it_offers_undo_in_the_htmx_answer_of_a_decision(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    item = claim(reviewer)

    response = rita.post(
        f"/review/{item.pk}/decide", {"verdict": "skip", "version": item.version}, **HTMX
    )

    assert f"Skipped item #{item.pk}" in toast(response.content.decode())


def test_it_offers_undo_on_the_queue_after_the_last_item(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)

    response = rita.post(
        f"/review/{item.pk}/decide",
        {"verdict": "correct", "version": item.version, "corrected_output": "Better."},
        follow=True,
    )

    assert response.redirect_chain == [("/queue/", 302)]
    undo = toast(response.content.decode())
    assert f"Corrected item #{item.pk}" in undo
    assert "hx-post" not in undo  # a plain form on the queue page
    assert b"coachdesk/review.js" in response.content  # for the `u` key


def test_it_stops_offering_undo_after_the_minute(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(rita, item)
    age(item)
    assert toast(rita.get("/queue/").content.decode()) == ""


def test_it_lists_the_undo_key_among_the_shortcuts(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    html = rita.get(f"/review/{item.pk}/").content.decode()
    shortcuts = html[html.index('id="shortcuts"') :]
    assert "<kbd>U</kbd></td><td>Undo your last decision" in shortcuts


# --- undoing ----------------------------------------------------------------------------------


def test_it_undoes_with_a_plain_post_and_redirects_to_the_item(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(rita, item)

    response = rita.post(f"/review/{item.pk}/undo", follow=True)

    assert response.redirect_chain == [(f"/review/{item.pk}/", 302)]
    html = response.content.decode()
    assert f"Undone: item #{item.pk} is yours again" in html
    assert 'name="verdict"' in html and "Held for you" in html
    stored = ReviewItem.objects.get(pk=item.pk)
    assert (stored.status, stored.claimed_by) == ("claimed", reviewer)
    assert not Review.objects.exists()


def test_it_undoes_with_htmx_and_answers_with_the_items_screen(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(rita, item)

    response = rita.post(f"/review/{item.pk}/undo", **HTMX)

    assert response.status_code == 200
    assert response["HX-Push-Url"] == f"/review/{item.pk}/"
    html = response.content.decode()
    assert re.match(rf'\s*<title>Item #{item.pk} · Coachdesk</title><section id="screen-', html)
    assert f"Undone: item #{item.pk} is yours again" in html
    assert toast(html) == ""  # nothing left to undo
    assert ReviewItem.objects.get(pk=item.pk).status == "claimed"


def test_it_keeps_the_filters_through_an_undo(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(rita, item, agent="support-bot")

    response = rita.post(f"/review/{item.pk}/undo", {"agent": "support-bot"})

    assert response["Location"] == f"/review/{item.pk}/?agent=support-bot"


def test_it_refuses_a_late_undo_and_goes_back_to_the_page(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.1)
    ReviewItemFactory(interaction__agent=agent, interaction__confidence=0.2)
    item = claim(reviewer)
    decide(rita, item)
    age(item)
    following = ReviewItem.objects.get(claimed_by=reviewer)

    response = rita.post(
        f"/review/{item.pk}/undo", {"next": f"/review/{following.pk}/"}, follow=True
    )

    assert response.redirect_chain == [(f"/review/{following.pk}/", 302)]
    assert "Too late to undo your decision on item" in response.content.decode()
    assert ReviewItem.objects.get(pk=item.pk).status == "done"


def test_it_never_sends_a_refused_undo_to_another_site(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(rita, item)
    age(item)
    response = rita.post(f"/review/{item.pk}/undo", {"next": "https://evil.example/"})
    assert response["Location"] == "/queue/"


def test_it_replaces_the_toast_with_the_reason_of_a_refused_htmx_undo(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(rita, item)
    age(item)

    response = rita.post(f"/review/{item.pk}/undo", **HTMX)

    assert response.status_code == 200
    assert (response["HX-Retarget"], response["HX-Reswap"]) == ("#undo-toast", "outerHTML")
    html = response.content.decode()
    assert 'role="alert"' in html and "Too late to undo" in html


def test_it_does_not_undo_another_reviewers_decision(client, reviewer, other_reviewer, agent):
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    client.force_login(reviewer)
    decide(client, item)
    client.force_login(other_reviewer)

    response = client.post(f"/review/{item.pk}/undo", follow=True)

    assert "Nothing to undo on item" in response.content.decode()
    assert ReviewItem.objects.get(pk=item.pk).status == "done"
    assert Review.objects.count() == 1


def test_it_refuses_get_and_unknown_items_on_undo(rita):
    assert rita.get("/review/1/undo").status_code == 405
    assert rita.post("/review/999999/undo").status_code == 404


def test_it_forbids_undo_to_users_without_the_reviewer_role(client, ml, agent):
    client.force_login(ml)
    assert client.post("/review/1/undo").status_code == 403


# --- reading what I decided -------------------------------------------------------------------


def test_it_shows_my_decided_item_read_only(rita, reviewer, agent):
    ReviewItemFactory(interaction__agent=agent, interaction__input="Where is my parcel?")
    item = claim(reviewer)
    decide(rita, item, "reject")

    response = rita.get(f"/review/{item.pk}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Where is my parcel?" in html
    assert "Read-only · you reviewed this item · Done" in html
    assert 'name="verdict"' not in html and "data-correction" not in html


def test_it_hides_my_decided_item_once_another_reviewer_picks_it_up(
    client, reviewer, other_reviewer
):
    legal = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    ReviewItemFactory(interaction__agent=legal)
    item = claim(reviewer)
    client.force_login(reviewer)
    decide(client, item)
    assert client.get(f"/review/{item.pk}/").status_code == 200
    claim(other_reviewer)

    response = client.get(f"/review/{item.pk}/")

    assert response.status_code == 404
    assert item.interaction.output.encode() not in response.content


# --- my recent decisions ----------------------------------------------------------------------


def reviewed(reviewer, agent, n: int, **fields) -> list[Review]:
    """`n` decided items of `reviewer`, oldest first, a minute apart (the last two minutes ago:
    none of them can be undone)."""
    now = timezone.now()
    return [
        ReviewFactory(
            item=ReviewItemFactory(interaction__agent=agent, done=True),
            reviewer=reviewer,
            created_at=now - timedelta(minutes=n - i + 1),
            **fields,
        )
        for i in range(n)
    ]


def test_it_lists_my_last_20_decisions_newest_first(rita, reviewer, other_reviewer, agent):
    mine = reviewed(reviewer, agent, 22)
    reviewed(other_reviewer, agent, 2)

    html = rita.get("/queue/decisions/").content.decode()

    rows = re.findall(r'<tr id="decision-row-(\d+)">', html)
    assert [int(pk) for pk in rows] == [r.pk for r in reversed(mine)][:20]
    assert "Support bot" in html and "Approve" in html


def test_it_links_the_items_i_may_still_open_and_no_others(rita, reviewer, other_reviewer, agent):
    legal = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    ReviewItemFactory(interaction__agent=legal, interaction__input="Second look please")
    moved_on = claim(reviewer)
    decide(rita, moved_on)
    claim(other_reviewer)  # picked up for the second review
    ReviewItemFactory(interaction__agent=agent, interaction__input="Still mine")
    mine = claim(reviewer)
    decide(rita, mine, "reject")

    html = rita.get("/queue/decisions/").content.decode()

    assert f'<a href="/review/{mine.pk}/">#{mine.pk}</a>' in html and "Still mine" in html
    assert f'href="/review/{moved_on.pk}/"' not in html
    assert "Second look please" not in html and "Out of your hands now" in html


def test_it_offers_undo_on_the_latest_decision_only_while_it_may_be_undone(rita, reviewer, agent):
    reviewed(reviewer, agent, 2)
    ReviewItemFactory(interaction__agent=agent)
    item = claim(reviewer)
    decide(rita, item)

    html = rita.get("/queue/decisions/").content.decode()
    assert html.count("data-undo-button") == 1
    assert f'action="/review/{item.pk}/undo"' in html
    age(item)
    assert "data-undo-button" not in rita.get("/queue/decisions/").content.decode()


def test_it_says_when_there_are_no_decisions_yet(rita):
    response = rita.get("/queue/decisions/")
    assert response.status_code == 200
    assert b"No decisions yet" in response.content


def test_it_links_my_recent_decisions_from_the_queue(rita):
    assert b'href="/queue/decisions/"' in rita.get("/queue/").content


def test_it_lists_my_decisions_with_the_same_queries_for_2_and_20(
    rita, reviewer, agent, django_assert_num_queries
):
    rita.get("/queue/decisions/")  # warm up the session
    reviewed(reviewer, agent, 2)
    # the user with their roles and pool (the session comes from the cache), the decisions
    # (with their items, agents and questions)
    with django_assert_num_queries(2):
        rita.get("/queue/decisions/")
    reviewed(reviewer, agent, 18, verdict="reject")
    with django_assert_num_queries(2):
        response = rita.get("/queue/decisions/")
    assert response.content.count(b'<tr id="decision-row-') == 20
