"""Scoring a rubric from the keyboard in real Chromium: digits score the highlighted
criterion and move on, `[` goes back, `a` approves; the stored scores are the keys typed."""

import pytest
from playwright.sync_api import expect

from reviews.models import Review, Score
from tests.e2e.test_review_flow import start_reviewing, status_of, support_items
from tests.rubric_support import make_rubric

pytestmark = pytest.mark.usefixtures("transactional_db")


def test_it_scores_the_rubric_with_keys_only_and_approves_with_a(login, reviewer, screenshot):
    first, second = support_items(2)
    make_rubric(
        first.agent, ("accuracy", "pass_fail"), ("tone", "scale"), ("brevity", "scale", False)
    )
    page = login("rita", next_url="/queue/")
    item_id = start_reviewing(page)
    assert item_id == first.pk
    rows = page.locator(f"#rubric-{first.pk} [data-criterion]")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_have_class("criterion is-current")

    page.keyboard.press("a")  # refused: accuracy and tone are required
    expect(page.locator(f"#criterion-{first.pk}-accuracy-error")).to_contain_text(
        "Accuracy is required to approve"
    )
    assert not Review.objects.exists()
    rows = page.locator(f"#rubric-{first.pk} [data-criterion]")
    expect(rows.nth(0)).to_have_class("criterion has-errors is-current")

    page.keyboard.press("0")  # accuracy: fail; on to tone
    expect(rows.nth(0)).to_have_class("criterion")  # scored: its error is gone
    expect(page.locator(f"#criterion-{first.pk}-accuracy-error")).to_have_count(0)
    expect(rows.nth(1)).to_have_class("criterion has-errors is-current")
    page.keyboard.press("2")  # tone: 2; on to brevity
    page.keyboard.press("[")  # back to tone
    page.keyboard.press("4")  # tone: 4 instead
    expect(rows.nth(2)).to_have_class("criterion is-current")
    page.keyboard.press("5")  # brevity: 5
    expect(page.locator("input[name=score_tone][value='4']")).to_be_checked()
    screenshot("review-rubric")

    page.keyboard.press("a")

    page.wait_for_url(f"**/review/{second.pk}/")
    assert status_of(first) == "done"
    review = Review.objects.get(item=first)
    assert review.verdict == "approve"
    assert dict(Score.objects.filter(review=review).values_list("criterion__key", "value")) == {
        "accuracy": 0,
        "tone": 4,
        "brevity": 5,
    }
