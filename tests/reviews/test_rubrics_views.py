"""The rubric on the review screen: the criteria with their keys' legend, required scores
refused with the criterion named under it, scores stored with a plain or htmx decision."""

import re

import pytest

from reviews import services
from reviews.models import Review, Score
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory
from tests.rubric_support import make_rubric

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def agent():
    return AgentFactory(slug="support-bot", name="Support bot", domain="support")


@pytest.fixture
def held(agent, reviewer, client):
    ReviewItemFactory(interaction=InteractionFactory(agent=agent))
    item = services.item_claim(reviewer=reviewer)
    client.force_login(reviewer)
    return item


@pytest.fixture
def rubric(agent):
    return make_rubric(agent, ("accuracy", "pass_fail"), ("tone", "scale", False))


def post(client, item, **fields):
    data = {"version": item.version, "verdict": "approve", **fields}
    return client.post(f"/review/{item.pk}/decide", data)


def test_it_shows_the_criteria_with_their_values_and_the_keys(client, held, rubric):
    page = client.get(f"/review/{held.pk}/").content.decode()

    assert 'name="rubric_version" value="1"' in page
    assert re.search(r"Accuracy</span>\s*<span class=\"criterion-required\">required", page)
    assert 'Tone</span> <span class="muted">(optional)' in page
    assert page.count('name="score_accuracy"') == 3  # not scored, pass, fail
    assert page.count('name="score_tone"') == 6  # not scored, 1-5
    assert 'data-score-value="0"' in page and 'data-score-value="5"' in page
    assert "<kbd>1</kbd>–<kbd>5</kbd> on a scale" in page


def test_it_shows_no_rubric_for_an_agent_without_one(client, held):
    page = client.get(f"/review/{held.pk}/").content.decode()
    assert "data-rubric" not in page and 'name="rubric_version"' not in page


def test_it_stores_the_scores_of_a_plain_decision(client, held, rubric):
    response = post(client, held, score_accuracy="1", score_tone="4")

    assert response.status_code == 302
    review = Review.objects.get(item=held)
    assert dict(review.scores.values_list("criterion__key", "value")) == {"accuracy": 1, "tone": 4}


def test_it_refuses_an_approval_without_a_required_score_under_the_criterion(client, held, rubric):
    response = post(client, held, score_tone="4", rubric_version="1")

    assert response.status_code == 400
    page = response.content.decode()
    errors = re.search(
        rf'id="criterion-{held.pk}-accuracy-error">(.*?)</ul>', page, flags=re.S
    ).group(1)
    assert "Accuracy is required to approve: score it 1 (pass) or 0 (fail)." in errors
    # What was typed comes back.
    assert re.search(r'name="score_tone" value="4" checked', page)
    assert not Review.objects.exists()


def test_it_answers_htmx_with_the_screen_and_the_error(client, held, rubric):
    response = client.post(
        f"/review/{held.pk}/decide",
        {"version": held.version, "verdict": "reject"},
        **HTMX,
    )
    page = response.content.decode()
    assert f'id="screen-{held.pk}"' in page
    assert "Accuracy is required to reject" in page
    assert not Score.objects.exists()


def test_it_needs_no_score_to_skip(client, held, rubric):
    response = post(client, held, verdict="skip")
    assert response.status_code == 302
    assert Review.objects.get(item=held).verdict == "skip"


def test_it_refuses_scores_of_a_rubric_replaced_since_the_page_was_shown(
    client, held, rubric, agent
):
    make_rubric(agent, ("accuracy", "pass_fail"), ("clarity", "scale"))

    response = post(client, held, score_accuracy="1", score_tone="3", rubric_version="1")

    assert response.status_code == 400
    page = response.content.decode()
    assert (
        "The rubric version you scored is 1, but this agent&#x27;s rubric is now version 2" in page
    )
    # The page now shows version 2 to score.
    assert 'name="rubric_version" value="2"' in page and 'name="score_clarity"' in page
    assert not Review.objects.exists()
