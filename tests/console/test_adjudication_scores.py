"""Rubric scores on the lead's adjudication form: shown, optional, checked, and stored with
the adjudication and its training pair."""

import pytest

from retraining.models import TrainingPair
from reviews.models import Review, Score
from tests.factories import AgentFactory, ReviewerFactory, ReviewFactory, ReviewItemFactory
from tests.rubric_support import make_rubric

pytestmark = pytest.mark.django_db


@pytest.fixture
def dispute(db):
    """A four-eyes item of legal-bot (whose rubric requires accuracy) that lena approved and
    lars corrected."""
    legal = AgentFactory(slug="legal-bot", domain="legal", four_eyes=True)
    make_rubric(legal, ("accuracy", "pass_fail"), ("tone", "scale", False))
    item = ReviewItemFactory(interaction__agent=legal, interaction__domain="legal", disputed=True)
    for username, verdict, corrected in (("lena", "approve", ""), ("lars", "correct", "Better")):
        ReviewFactory(
            item=item,
            reviewer=ReviewerFactory(username=username, domains=["legal"]),
            verdict=verdict,
            corrected_output=corrected,
        )
    return item


def test_it_shows_the_rubric_on_the_adjudication_form(admin_client, dispute):
    html = admin_client.get(f"/console/adjudication/{dispute.pk}/").content.decode()

    assert 'name="score_accuracy"' in html and 'name="score_tone"' in html
    assert 'name="rubric_version" value="1"' in html


def test_it_stores_the_leads_scores_with_the_adjudication_and_the_pair(admin_client, dispute):
    response = admin_client.post(
        f"/console/adjudication/{dispute.pk}/",
        {
            "verdict": "correct",
            "corrected_output": "Final answer",
            "score_accuracy": "1",
            "score_tone": "4",
            "rubric_version": "1",
        },
    )

    assert response.status_code == 302
    review = Review.objects.get(item=dispute, is_adjudication=True)
    assert dict(Score.objects.filter(review=review).values_list("criterion__key", "value")) == {
        "accuracy": 1,
        "tone": 4,
    }
    pair = TrainingPair.objects.get(item=dispute)
    assert pair.scores == {"accuracy": 1, "tone": 4, "_rubric_version": 1}


def test_it_adjudicates_without_scores_even_when_the_rubric_requires_some(admin_client, dispute):
    response = admin_client.post(f"/console/adjudication/{dispute.pk}/", {"verdict": "approve"})

    assert response.status_code == 302
    review = Review.objects.get(item=dispute, is_adjudication=True)
    assert not Score.objects.filter(review=review).exists()


def test_it_names_the_criterion_of_a_bad_score_and_saves_nothing(admin_client, dispute):
    response = admin_client.post(
        f"/console/adjudication/{dispute.pk}/",
        {"verdict": "approve", "score_accuracy": "1", "rubric_version": "9"},
    )

    assert response.status_code == 400
    assert b"The rubric version you scored is 9" in response.content
    assert not Review.objects.filter(item=dispute, is_adjudication=True).exists()
