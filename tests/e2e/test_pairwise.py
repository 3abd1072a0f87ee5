"""The pairwise review flow in real Chromium: claim from the comparison queue, choose with
the keyboard, and the vote stored in terms of the answer that was really on that side.

`live_server` makes every test transactional.
"""

import re

import pytest
from playwright.sync_api import Page, expect

from evals.models import Comparison, ComparisonVote
from tests.evals.factories import ComparisonFactory, comparisons_make

pytestmark = pytest.mark.usefixtures("transactional_db")

COMPARE_URL = re.compile(r"/compare/(\d+)/$")


def start_comparing(page: Page) -> int:
    """Clicks "Start comparing"; returns the id of the comparison it opened."""
    page.get_by_role("button", name="Start comparing").click()
    page.wait_for_url(COMPARE_URL)
    match = COMPARE_URL.search(page.url)
    assert match is not None
    return int(match.group(1))


def shown(page: Page, comparison_id: int, side: str) -> str:
    """The raw text of the answer shown on `side` (left / right) of the screen."""
    return page.locator(f"#answer-{side}-{comparison_id} .raw-answer").text_content() or ""


@pytest.mark.parametrize("a_on_left", [True, False])
def test_a_reviewer_prefers_the_right_answer_with_the_2_key(login, reviewer, a_on_left):
    c = ComparisonFactory(
        answer_a="Returns within 30 days.",
        answer_b="Returns within 60 days, with the receipt.",
        a_on_left=a_on_left,
    )
    page = login("rita", next_url="/compare/")
    expect(page.locator(".big-number")).to_contain_text("1 comparison ready for you")

    assert start_comparing(page) == c.pk
    on_the_right = shown(page, c.pk, "right")
    expect(page.locator(f"#answer-right-{c.pk} h2")).to_have_text("Answer 2")
    page.keyboard.press("2")

    expect(page.get_by_role("heading", name="Nothing left to compare")).to_be_visible()
    vote = ComparisonVote.objects.get(comparison=c)
    right_is = "b" if a_on_left else "a"
    assert on_the_right == getattr(c, f"answer_{right_is}")
    assert (vote.choice, vote.a_on_left, vote.reviewer_id) == (right_is, a_on_left, reviewer.pk)
    assert vote.seconds_spent is not None  # stamped by compare.js on the keyboard "click"
    assert Comparison.objects.get(pk=c.pk).outcome == right_is


def test_the_drawn_orders_vary_and_the_screen_shows_the_recorded_one(login, reviewer):
    made = comparisons_make(40)
    assert {c.a_on_left for c in made} == {True, False}  # 2 in 2**40 runs fail by chance
    page = login("rita", next_url="/compare/")
    current = start_comparing(page)

    checked: dict[bool, int] = {True: 0, False: 0}
    while min(checked.values()) < 2:
        left = shown(page, current, "left")
        right = shown(page, current, "right")
        stored = Comparison.objects.get(pk=current)
        assert (left, right) == (
            (stored.answer_a, stored.answer_b)
            if stored.a_on_left
            else (stored.answer_b, stored.answer_a)
        )
        checked[stored.a_on_left] += 1
        page.keyboard.press("1")
        expect(page.locator(f"#compare-{current}")).to_have_count(0)
        vote = ComparisonVote.objects.get(comparison_id=current)
        assert vote.choice == ("a" if stored.a_on_left else "b")
        next_screen = page.locator("[data-compare-screen][data-comparison]")
        expect(next_screen).to_have_count(1)
        current = int(next_screen.get_attribute("data-comparison") or 0)
        assert sum(checked.values()) < 40, "both orders should have shown up by now"
    assert page.url.endswith(f"/compare/{current}/")  # htmx pushed the next one's URL


def test_the_ml_role_cannot_open_the_comparison_queue(login, live_server, ml):
    page = login("mo", next_url="/")
    response = page.goto(f"{live_server.url}/compare/")
    assert response is not None and response.status == 403
    expect(page.locator(".topbar nav")).not_to_contain_text("Compare")
