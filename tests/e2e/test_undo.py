"""Undo in real Chromium: a decision taken back with the `u` key from the next item's
screen (an htmx swap), the item back in the reviewer's hands, then decided anew."""

import pytest
from playwright.sync_api import expect

from retraining.models import TrainingPair
from reviews.models import Review
from tests.e2e.test_review_flow import start_reviewing, status_of, support_items

pytestmark = pytest.mark.usefixtures("transactional_db")


def test_it_undoes_an_approval_with_the_u_key_and_decides_it_anew(login, reviewer):
    first, second = support_items(2)
    page = login("rita", next_url="/queue/")
    assert start_reviewing(page) == first.pk
    page.keyboard.press("a")
    page.wait_for_url(f"**/review/{second.pk}/")
    toast = page.locator("#undo-toast")
    expect(toast).to_contain_text(f"Approved item #{first.pk}")
    expect(toast.get_by_role("button", name="Undo")).to_be_visible()
    assert TrainingPair.objects.filter(item=first).exists()
    page.keyboard.press("?")
    expect(page.locator("#shortcuts")).to_contain_text("Undo your last decision")
    page.keyboard.press("Escape")

    page.keyboard.press("u")

    page.wait_for_url(f"**/review/{first.pk}/")
    expect(page.get_by_role("heading", name=f"Item #{first.pk}")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"Undone: item #{first.pk} is yours again")
    expect(page.locator(".lease")).to_contain_text("Held for you")
    expect(page.locator("#undo-toast")).to_have_count(0)
    assert status_of(first) == "claimed"
    assert not Review.objects.filter(item=first).exists()
    assert not TrainingPair.objects.filter(item=first).exists()

    page.keyboard.press("r")

    # Back to the item the first decision had moved me on to: it stayed mine.
    page.wait_for_url(f"**/review/{second.pk}/")
    expect(page.locator("#undo-toast")).to_contain_text(f"Rejected item #{first.pk}")
    assert Review.objects.get(item=first).verdict == "reject"
    assert (status_of(first), status_of(second)) == ("done", "claimed")
