"""In real Chromium: the database connection drops while a correction is being saved.

The review page posts with htmx; the server answers 503, the page says what happened and
keeps the typed correction in its editor, and sending it again saves it.
"""

import psycopg
import pytest
from playwright.sync_api import expect

from retraining.models import TrainingPair
from reviews.models import Review
from tests.e2e.test_review_flow import (
    CORRECTED,
    ORIGINAL,
    start_reviewing,
    support_items,
    write_correction,
)
from tests.faults.test_database_drop import db_dsn, terminate_waiting_backend

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.usefixtures("transactional_db")]


def test_a_dropped_connection_keeps_the_correction_on_the_page(login, reviewer):
    (item,) = support_items(1)
    page = login("rita", next_url="/queue/")
    start_reviewing(page)
    write_correction(page, item.pk, CORRECTED)

    with psycopg.connect(db_dsn()) as locker:
        locker.execute("SELECT id FROM reviews_reviewitem WHERE id = %s FOR UPDATE", [item.pk])
        with page.expect_response(lambda r: r.url.endswith("/decide")) as answer:
            page.keyboard.press("ControlOrMeta+Enter")
            terminate_waiting_backend(locker)
            locker.rollback()
    assert answer.value.status == 503

    expect(page.locator("#review-toast")).to_contain_text("nothing was saved")
    expect(page.locator(f"#correction-{item.pk}")).to_have_value(CORRECTED)
    assert not Review.objects.filter(item=item).exists()

    page.keyboard.press("ControlOrMeta+Enter")  # send it again: the next request works

    expect(page.get_by_role("status")).to_contain_text("Correction saved.")
    pair = TrainingPair.objects.get(item=item)
    assert (pair.output, pair.rejected_output) == (CORRECTED, ORIGINAL)
