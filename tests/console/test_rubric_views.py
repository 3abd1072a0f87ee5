"""The rubric editor (/console/agents/<slug>/rubric): leads only; saving makes the next
version and keeps the earlier ones; errors under their field, nothing saved."""

import re

import pytest

from reviews.models import Criterion, Rubric
from tests.factories import AgentFactory
from tests.rubric_support import make_rubric

pytestmark = pytest.mark.django_db
URL = "/console/agents/support-bot/rubric"


@pytest.fixture
def agent():
    return AgentFactory(slug="support-bot", name="Support bot", domain="support")


def rows(*criteria, base_version=0, initial=0, extra=0):
    """The POST of the formset: criteria as dicts of the row's fields."""
    data = {
        "criteria-TOTAL_FORMS": str(len(criteria) + extra),
        "criteria-INITIAL_FORMS": str(initial),
        "criteria-MIN_NUM_FORMS": "0",
        "criteria-MAX_NUM_FORMS": "20",
        "base_version": str(base_version),
    }
    for i, row in enumerate(criteria):
        fields = {"kind": "pass_fail", "required": "1", "help_text": "", "ORDER": str(i + 1)}
        for name, value in {**fields, **row}.items():
            if value is not None:
                data[f"criteria-{i}-{name}"] = value
    for i in range(len(criteria), len(criteria) + extra):  # blank rows, as the browser posts
        data.update({f"criteria-{i}-kind": "pass_fail", f"criteria-{i}-required": "1"})
    return data


@pytest.mark.parametrize("method", ["get", "post"])
def test_it_refuses_the_editor_to_reviewers_and_ml(client, reviewer, ml, agent, method):
    for user in (reviewer, ml):
        client.force_login(user)
        response = getattr(client, method)(URL, rows({"key": "x", "name": "X"}))
        assert response.status_code == 403
    assert not Rubric.objects.exists()


def test_it_answers_404_for_an_unknown_agent(client, lead):
    client.force_login(lead)
    assert client.get("/console/agents/nobody/rubric").status_code == 404


def test_it_saves_the_first_version_skipping_blank_rows(client, lead, agent):
    client.force_login(lead)
    data = rows(
        {"key": "accuracy", "name": "Accuracy", "help_text": "Facts right?"},
        {"key": "tone", "name": "Tone", "kind": "scale", "required": "0"},
        extra=2,
    )

    response = client.post(URL, data)

    assert response.status_code == 302 and response["Location"] == URL
    rubric = Rubric.objects.get(agent=agent)
    assert (rubric.version, rubric.created_by) == (1, lead)
    assert list(rubric.criteria.values_list("key", "name", "kind", "required", "help_text")) == [
        ("accuracy", "Accuracy", "pass_fail", True, "Facts right?"),
        ("tone", "Tone", "scale", False, ""),
    ]


def test_it_saves_an_edit_as_the_next_version_in_the_new_order(client, lead, agent):
    v1 = make_rubric(agent, ("accuracy", "pass_fail"), ("tone", "scale"))
    client.force_login(lead)
    data = rows(
        {"key": "accuracy", "name": "Accuracy", "ORDER": "2"},
        {"key": "tone", "name": "Tone", "kind": "scale", "DELETE": "on"},
        {"key": "clarity", "name": "Clarity", "kind": "scale", "ORDER": "1"},
        base_version=1,
        initial=2,
    )

    response = client.post(URL, data)

    assert response.status_code == 302
    v2 = Rubric.objects.get(agent=agent, version=2)
    assert list(v2.criteria.values_list("key", flat=True)) == ["clarity", "accuracy"]
    assert list(v1.criteria.values_list("key", flat=True)) == ["accuracy", "tone"]
    page = client.get(URL).content.decode()
    assert "<strong>v2</strong> (active)" in page and "<strong>v1</strong>" in page


def test_it_shows_the_active_version_in_the_form(client, lead, agent):
    make_rubric(agent, ("accuracy", "pass_fail"), ("tone", "scale", False))
    client.force_login(lead)
    page = client.get(URL).content.decode()
    assert 'name="criteria-0-key" value="accuracy"' in page
    assert 'name="criteria-1-key" value="tone"' in page
    assert re.search(r'name="base_version" value="1"', page)


def test_it_shows_each_error_under_its_field_and_saves_nothing(client, lead, agent):
    client.force_login(lead)
    data = rows(
        {"key": "tone", "name": "Tone"},
        {"key": "tone", "name": "Tone again"},
        {"key": "Not a slug!", "name": ""},
    )

    response = client.post(URL, data)

    assert response.status_code == 400
    page = response.content.decode()
    assert re.search(r'id="id_criteria-2-key_error"><li>.*slug', page)
    assert re.search(r'id="id_criteria-2-name_error"><li>This field is required', page)
    assert "Nothing was saved" in page
    assert not Rubric.objects.exists() and not Criterion.objects.exists()


def test_it_shows_a_duplicate_key_under_the_second_row(client, lead, agent):
    client.force_login(lead)
    response = client.post(
        URL, rows({"key": "tone", "name": "Tone"}, {"key": "tone", "name": "T2"})
    )
    assert response.status_code == 400
    assert re.search(
        r'id="id_criteria-1-key_error"><li>Key &#x27;tone&#x27; is already used by &#x27;Tone',
        response.content.decode(),
    )


def test_it_refuses_a_save_over_a_version_saved_meanwhile(client, lead, agent):
    make_rubric(agent, ("accuracy", "pass_fail"))
    client.force_login(lead)

    response = client.post(URL, rows({"key": "tone", "name": "Tone"}, base_version=0))

    assert response.status_code == 400
    assert "Someone saved version 1 of this rubric since you opened it" in response.content.decode()
    assert Rubric.objects.filter(agent=agent).count() == 1


def test_it_says_so_when_nothing_changed(client, lead, agent):
    make_rubric(agent, ("accuracy", "pass_fail"))
    client.force_login(lead)
    data = rows({"key": "accuracy", "name": "Accuracy"}, base_version=1, initial=1)
    response = client.post(URL, data, follow=True)
    assert "Nothing changed: the rubric of support-bot stays v1." in response.content.decode()
    assert Rubric.objects.filter(agent=agent).count() == 1
