"""Rubrics: versions that never change, scores checked against the active version when the
item is locked (required criteria, ranges, unknown keys, a stale version), stored with the
review in the decision's transaction, copied into the training pair; the API's side."""

import pytest
from django.db import IntegrityError, transaction

from reviews import rubrics, services
from reviews.models import Criterion, Immutable, Review, ReviewItem, Rubric, Score
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory, UserFactory
from tests.rubric_support import make_rubric

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent():
    return AgentFactory(slug="support-bot", domain="support")


@pytest.fixture
def rubric(agent, lead):
    # v1: accuracy pass / fail (required), tone 1-5 (optional), helpfulness 1-5 (required)
    return make_rubric(
        agent,
        ("accuracy", "pass_fail"),
        ("tone", "scale", False),
        ("helpfulness", "scale"),
        actor=lead,
    )


@pytest.fixture
def held(agent, reviewer):
    ReviewItemFactory(interaction=InteractionFactory(agent=agent))
    item = services.item_claim(reviewer=reviewer)
    assert item is not None
    return item


@pytest.fixture
def rita(api_client, reviewer):
    return api_client(reviewer)


def decide(client, item, **body):
    return client.post(f"/api/v1/items/{item.pk}/decision", body)


# --- versions -----------------------------------------------------------------------------------


def test_it_makes_a_new_version_on_edit_and_old_scores_keep_the_old_criteria(
    agent, rubric, held, rita, lead
):
    response = decide(
        rita, held, verdict="approve", scores={"accuracy": 1, "tone": 4, "helpfulness": 5}
    )
    assert response.status_code == 200, response.json()

    v2 = make_rubric(agent, ("accuracy", "pass_fail"), ("politeness", "scale"), actor=lead)

    assert list(Rubric.objects.filter(agent=agent).values_list("version", flat=True)) == [2, 1]
    assert v2.version == 2
    assert list(v2.criteria.values_list("key", flat=True)) == ["accuracy", "politeness"]
    # v1 is untouched: its three criteria, and the scores point at them.
    assert list(rubric.criteria.values_list("key", flat=True)) == [
        "accuracy",
        "tone",
        "helpfulness",
    ]
    scored = {
        s.criterion.key: (s.value, s.criterion.rubric.version)
        for s in Score.objects.select_related("criterion__rubric")
    }
    assert scored == {"accuracy": (1, 1), "tone": (4, 1), "helpfulness": (5, 1)}
    # The two "accuracy" criteria are different rows.
    assert v2.criteria.get(key="accuracy").pk != rubric.criteria.get(key="accuracy").pk


def test_it_never_changes_a_saved_version(rubric):
    rubric.version = 7
    with pytest.raises(Immutable):
        rubric.save()
    criterion = rubric.criteria.first()
    criterion.name = "Something else"
    with pytest.raises(Immutable):
        criterion.save()
    assert Criterion.objects.filter(name="Something else").count() == 0


def test_it_refuses_a_save_on_top_of_a_version_saved_meanwhile(agent, rubric, lead):
    with pytest.raises(rubrics.RubricChanged, match="version 1"):
        rubrics.rubric_create(
            agent=agent,
            criteria=[rubrics.CriterionIn(key="x", name="X", kind="scale")],
            actor=lead,
            base_version=0,  # the editor opened the page before v1 existed
        )
    assert Rubric.objects.filter(agent=agent).count() == 1


def test_it_saves_no_new_version_when_nothing_changed(agent, rubric, lead):
    same = [
        rubrics.CriterionIn(key=c.key, name=c.name, kind=c.kind, required=c.required)
        for c in rubric.criteria.all()
    ]
    assert rubrics.rubric_create(agent=agent, criteria=same, actor=lead, base_version=1) is None
    assert Rubric.objects.filter(agent=agent).count() == 1


def test_it_refuses_invalid_criteria_row_by_row(agent, lead):
    with pytest.raises(rubrics.InvalidCriteria) as refused:
        rubrics.rubric_create(
            agent=agent,
            criteria=[
                rubrics.CriterionIn(key="tone", name="Tone", kind="scale"),
                rubrics.CriterionIn(key="tone", name="Tone again", kind="scale"),
                rubrics.CriterionIn(key="Bad Key!", name="", kind="stars"),
            ],
            actor=lead,
            base_version=0,
        )
    assert set(refused.value.problems) == {1, 2}
    assert "already used" in refused.value.problems[1]["key"]
    assert set(refused.value.problems[2]) == {"key", "name", "kind"}
    assert not Rubric.objects.exists()


def test_it_audits_a_new_version(agent, rubric, lead):
    from core.models import AuditEvent

    event = AuditEvent.objects.get(action="rubric.created")
    assert (event.actor_id, event.target_id) == (lead.pk, agent.pk)
    assert event.after == {"version": 1, "criteria": ["accuracy", "tone", "helpfulness"]}


def test_it_refuses_scores_out_of_the_database_range(held, rubric, reviewer):
    review = Review.objects.create(item=held, reviewer=reviewer, verdict="approve")
    criterion = rubric.criteria.get(key="tone")
    with pytest.raises(IntegrityError), transaction.atomic():
        Score.objects.create(review=review, criterion=criterion, value=6)
    with pytest.raises(IntegrityError), transaction.atomic():
        Score.objects.create(review=review, criterion=criterion, value=-1)
    Score.objects.create(review=review, criterion=criterion, value=5)
    with pytest.raises(IntegrityError), transaction.atomic():
        Score.objects.create(review=review, criterion=criterion, value=4)  # one per criterion


# --- deciding through the API -------------------------------------------------------------------


def test_it_stores_the_scores_with_the_review_and_copies_them_into_the_pair(held, rubric, rita):
    response = decide(
        rita, held, verdict="approve", scores={"accuracy": 1, "tone": 4, "helpfulness": 3}
    )

    assert response.json() == {"id": held.pk, "status": "done"}
    review = Review.objects.get(item=held)
    assert dict(review.scores.values_list("criterion__key", "value")) == {
        "accuracy": 1,
        "tone": 4,
        "helpfulness": 3,
    }
    held.refresh_from_db()
    assert held.training_pair.scores == {
        "accuracy": 1,
        "tone": 4,
        "helpfulness": 3,
        "_rubric_version": 1,
    }


def test_it_lets_an_optional_criterion_go_unscored(held, rubric, rita):
    response = decide(rita, held, verdict="reject", scores={"accuracy": 0, "helpfulness": 1})
    assert response.status_code == 200
    assert sorted(Score.objects.values_list("value", flat=True)) == [0, 1]


@pytest.mark.parametrize("verdict", ["approve", "reject"])
def test_it_refuses_a_decision_without_a_required_score_naming_the_criterion(
    held, rubric, rita, verdict
):
    response = decide(rita, held, verdict=verdict, scores={"tone": 3, "helpfulness": 4})

    assert response.status_code == 400
    assert response.json()["errors"] == {
        "scores.accuracy": f"Accuracy is required to {verdict}: score it 1 (pass) or 0 (fail)"
    }
    assert not Review.objects.exists() and not Score.objects.exists()
    held.refresh_from_db()
    assert held.status == ReviewItem.Status.CLAIMED


def test_it_refuses_a_correction_without_the_required_scores(held, rubric, rita):
    response = decide(rita, held, verdict="correct", corrected_output="Better.")
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"scores.accuracy", "scores.helpfulness"}
    assert "Helpfulness is required to correct" in response.json()["errors"]["scores.helpfulness"]


def test_it_needs_no_scores_to_escalate_but_keeps_those_given(held, rubric, rita):
    assert decide(rita, held, verdict="escalate", scores={"tone": 2}).status_code == 200
    assert list(Score.objects.values_list("criterion__key", "value")) == [("tone", 2)]


def test_it_stores_no_scores_for_a_skip(held, rubric, rita):
    response = decide(rita, held, verdict="skip", scores={"accuracy": 1, "nonsense": 9})
    assert response.status_code == 200
    assert not Score.objects.exists()


@pytest.mark.parametrize(
    ("scores", "key", "message"),
    [
        ({"accuracy": 2}, "accuracy", "Accuracy must be 1 (pass) or 0 (fail), not 2"),
        (
            {"helpfulness": 0},
            "helpfulness",
            "Helpfulness must be a whole number from 1 to 5, not 0",
        ),
        (
            {"helpfulness": 6},
            "helpfulness",
            "Helpfulness must be a whole number from 1 to 5, not 6",
        ),
        ({"tone": -1}, "tone", "Tone must be a whole number from 1 to 5, not -1"),
    ],
)
def test_it_refuses_scores_out_of_their_range(held, rubric, rita, scores, key, message):
    body = {"accuracy": 1, "helpfulness": 3, **scores}
    response = decide(rita, held, verdict="approve", scores=body)
    assert response.status_code == 400
    assert response.json()["errors"] == {f"scores.{key}": message}
    assert not Review.objects.exists()


def test_it_refuses_a_key_the_rubric_does_not_have(held, rubric, rita):
    body = {"accuracy": 1, "helpfulness": 3, "speed": 4}
    response = decide(rita, held, verdict="approve", scores=body)
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "scores.speed": "'speed' is not a criterion of this agent's rubric (version 1: "
        "accuracy, tone, helpfulness)"
    }


def test_it_refuses_scores_for_an_agent_without_a_rubric(held, rita):
    response = decide(rita, held, verdict="approve", scores={"accuracy": 1})
    assert response.status_code == 400
    assert response.json()["errors"] == {
        "scores": "were sent, but this agent has no rubric to score"
    }


def test_it_refuses_scores_of_a_rubric_version_replaced_meanwhile(agent, held, rubric, rita, lead):
    make_rubric(agent, ("accuracy", "pass_fail"), actor=lead)
    response = decide(
        rita, held, verdict="approve", rubric_version=1, scores={"accuracy": 1, "helpfulness": 3}
    )
    assert response.status_code == 400
    assert "now version 2" in response.json()["errors"]["rubric_version"]
    assert not Review.objects.exists()


def test_it_checks_against_the_version_active_when_the_item_is_locked(agent, held, rubric, rita):
    # Saved after the claim: the decision follows v2, which only asks for "accuracy".
    make_rubric(agent, ("accuracy", "pass_fail"))
    response = decide(rita, held, verdict="approve", scores={"accuracy": 0})
    assert response.status_code == 200
    score = Score.objects.select_related("criterion__rubric").get()
    assert score.criterion.rubric.version == 2


def test_it_answers_the_active_rubric_to_reviewers(agent, rubric, rita, api_client, ml):
    response = rita.get("/api/v1/agents/support-bot/rubric")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 1
    assert [(c["key"], c["kind"], c["required"], c["values"]) for c in body["criteria"]] == [
        ("accuracy", "pass_fail", True, [0, 1]),
        ("tone", "scale", False, [1, 2, 3, 4, 5]),
        ("helpfulness", "scale", True, [1, 2, 3, 4, 5]),
    ]
    assert rita.get("/api/v1/agents/nobody/rubric").status_code == 404
    assert api_client(ml).get("/api/v1/agents/support-bot/rubric").status_code == 403


# --- undo, four-eyes, adjudication --------------------------------------------------------------


def test_it_removes_the_scores_with_an_undone_decision(held, rubric, rita, reviewer):
    decide(rita, held, verdict="approve", scores={"accuracy": 1, "helpfulness": 2})
    assert Score.objects.count() == 2
    services.review_undo(item=held, reviewer=reviewer)
    assert not Score.objects.exists()
    assert rubric.criteria.count() == 3  # the criteria stay


def test_it_gives_an_adjudicated_pair_the_scores_of_the_review_it_agrees_with(
    api_client, lead, rubric, agent
):
    first, second = (
        UserFactory(username=name, roles=["reviewer"], domains=["support"])
        for name in ("ann", "bob")
    )
    item = ReviewItemFactory(interaction=InteractionFactory(agent=agent), four_eyes=True)
    for person, verdict, scores in (
        (first, "approve", {"accuracy": 1, "helpfulness": 5}),
        (second, "reject", {"accuracy": 0, "helpfulness": 1}),
    ):
        client = api_client(person)
        assert client.post("/api/v1/queue/claim", {}).status_code == 200
        assert decide(client, item, verdict=verdict, scores=scores).status_code == 200
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.DISPUTED

    outcome = services.item_adjudicate(
        item=item, admin=lead, decision=services.decision_validate(item=item, verdict="approve")
    )

    assert outcome.pair.scores == {"accuracy": 1, "helpfulness": 5, "_rubric_version": 1}
