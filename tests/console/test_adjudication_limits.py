"""The adjudication form's text limits: a lead's over-limit correction is refused with both
figures, and its "Show changes" preview says so without tokenising the text."""

import pytest

from reviews import selectors
from reviews.models import Review
from tests.factories import AgentFactory, ReviewItemFactory

pytestmark = pytest.mark.django_db
TOO_LONG = "a." * 12_506 + "x"  # 25,013 characters, one diff token per character
MESSAGE = "Your corrected answer is 25,013 characters; the limit is 20,000."


@pytest.fixture
def dispute(client, lead):
    client.force_login(lead)
    legal = AgentFactory(slug="legal-bot", domain="legal", four_eyes=True)
    return ReviewItemFactory(interaction__agent=legal, interaction__domain="legal", disputed=True)


@pytest.fixture
def untokenisable(monkeypatch):
    monkeypatch.setattr(selectors, "_TOKEN", None)


def test_it_refuses_an_adjudication_over_the_limit_with_both_figures(
    client, dispute, untokenisable
):
    response = client.post(
        f"/console/adjudication/{dispute.pk}/",
        {"verdict": "correct", "corrected_output": TOO_LONG, "notes": "n" * 5_001},
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert MESSAGE in html
    assert "Your notes are 5,001 characters; the limit is 5,000." in html
    assert not Review.objects.filter(is_adjudication=True).exists()


def test_it_previews_an_over_limit_correction_as_too_long(client, dispute, untokenisable):
    response = client.post(
        f"/console/adjudication/{dispute.pk}/", {"preview": "1", "corrected_output": TOO_LONG}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert MESSAGE in html and "<ins>" not in html
