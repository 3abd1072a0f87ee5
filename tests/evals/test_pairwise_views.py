"""The comparison pages: access, the blind screen, votes from left / right, htmx and plain
flows, conflicts, skip, the hold, adjudication."""

import pytest
from django.utils import timezone

from evals import claims, services
from evals.models import Comparison, ComparisonVote
from tests.evals.factories import ComparisonFactory
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
# Version names distinctive enough that any leak onto the page is found.
SECRET_A, SECRET_B = "zeta-build-7731", "omega-build-9942"


def logged_in(client, user):
    client.force_login(user)
    return client


def claim(user) -> Comparison:
    comparison = claims.comparison_claim(reviewer=user)
    assert comparison is not None
    return comparison


def page(client, comparison) -> str:
    response = client.get(f"/compare/{comparison.pk}/")
    assert response.status_code == 200
    return response.content.decode()


# --- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/compare/", "/compare/1/", "/compare/disputed/"])
def test_it_sends_anonymous_users_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_it_forbids_the_pages_to_the_ml_role(client, ml):
    c = ComparisonFactory()
    logged_in(client, ml)
    assert client.get("/compare/").status_code == 403
    assert client.get(f"/compare/{c.pk}/").status_code == 403
    assert client.post("/compare/claim").status_code == 403
    assert client.post(f"/compare/{c.pk}/decide", {"side": "left", "version": 0}).status_code == 403
    assert client.get(f"/compare/{c.pk}/adjudicate").status_code == 403
    assert not ComparisonVote.objects.exists()


def test_it_forbids_adjudication_to_reviewers(client, reviewer):
    c = ComparisonFactory()
    logged_in(client, reviewer)
    assert client.get("/compare/disputed/").status_code == 403
    assert client.post(f"/compare/{c.pk}/adjudicate", {"side": "left"}).status_code == 403


def test_it_hides_a_comparison_someone_else_holds(client, reviewer, other_reviewer):
    c = ComparisonFactory(answer_a="held elsewhere")
    claim(other_reviewer)
    response = logged_in(client, reviewer).get(f"/compare/{c.pk}/")
    assert response.status_code == 404
    assert "held elsewhere" not in response.content.decode()


def test_an_admin_reads_a_comparison_without_the_buttons(client, lead, reviewer):
    c = ComparisonFactory()
    claim(reviewer)
    html = page(logged_in(client, lead), c)
    assert "Read-only" in html
    assert 'name="side"' not in html


def test_the_nav_links_compare_for_reviewers_only(client, reviewer, ml):
    assert 'href="/compare/"' in logged_in(client, reviewer).get("/queue/").content.decode()
    client.logout()
    assert 'href="/compare/"' not in logged_in(client, ml).get("/exports/").content.decode()


# --- the queue ------------------------------------------------------------------------------------


def test_the_queue_counts_what_i_can_claim(client, reviewer):
    ComparisonFactory.create_batch(3)
    ComparisonFactory(domain="legal")
    html = logged_in(client, reviewer).get("/compare/").content.decode()
    assert "<strong>3</strong> comparisons ready for you" in html
    assert "Start comparing" in html


def test_the_queue_says_when_nothing_waits(client, reviewer):
    html = logged_in(client, reviewer).get("/compare/").content.decode()
    assert "<strong>0</strong> comparisons ready for you" in html
    assert "No comparisons waiting" in html


def test_start_comparing_claims_and_opens_the_screen(client, reviewer):
    c = ComparisonFactory()
    response = logged_in(client, reviewer).post("/compare/claim")
    assert response.status_code == 302
    assert response["Location"] == f"/compare/{c.pk}/"
    assert Comparison.objects.get(pk=c.pk).claimed_by_id == reviewer.pk


def test_start_comparing_with_nothing_left_goes_back_to_the_queue(client, reviewer):
    response = logged_in(client, reviewer).post("/compare/claim", follow=True)
    assert response.redirect_chain == [("/compare/", 302)]
    assert "Nothing left to compare" in response.content.decode()


# --- the blind screen -----------------------------------------------------------------------------


@pytest.mark.parametrize("a_on_left", [True, False])
def test_the_screen_shows_the_drawn_order_as_answer_1_and_answer_2(client, reviewer, a_on_left):
    c = ComparisonFactory(answer_a="Stored answer alpha", answer_b="Stored answer beta")
    Comparison.objects.filter(pk=c.pk).update(a_on_left=a_on_left)
    claim(reviewer)

    html = page(logged_in(client, reviewer), c)

    left, right = html.index(f'id="answer-left-{c.pk}"'), html.index(f'id="answer-right-{c.pk}"')
    alpha, beta = html.index("Stored answer alpha"), html.index("Stored answer beta")
    assert left < right
    if a_on_left:
        assert left < alpha < right < beta
    else:
        assert left < beta < right < alpha
    assert "Answer 1" in html and "Answer 2" in html


@pytest.mark.parametrize("a_on_left", [True, False])
def test_the_screen_never_reveals_versions_or_storage_order(client, reviewer, a_on_left):
    ComparisonFactory(version_a=SECRET_A, version_b=SECRET_B, a_on_left=a_on_left)
    c = claim(reviewer)

    html = page(logged_in(client, reviewer), c)

    for leak in (SECRET_A, SECRET_B, "version_a", "version_b", "answer_a", "answer_b"):
        assert leak not in html
    for leak in ("Answer A", "Answer B", "a_on_left", "<!--"):
        assert leak not in html


def test_the_screen_escapes_agent_text(client, reviewer):
    ComparisonFactory(
        input=XSS,
        answer_a=f"A {XSS}",
        answer_b=f"B {XSS}",
        context=[{"role": "user", "content": XSS}, {"role": "assistant", "content": XSS}],
    )
    c = claim(reviewer)

    html = page(logged_in(client, reviewer), c)

    assert XSS not in html
    assert html.count(XSS_ESCAPED) >= 5  # input, two turns, both answers (raw text)


def test_the_screen_shows_the_earlier_conversation_once(client, reviewer):
    ComparisonFactory(context=[{"role": "user", "content": "Earlier question 4417"}])
    c = claim(reviewer)
    assert page(logged_in(client, reviewer), c).count("Earlier question 4417") == 1


# --- voting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_on_left", "side", "stored"),
    [
        (True, "left", "a"),
        (True, "right", "b"),
        (False, "left", "b"),
        (False, "right", "a"),
        (False, "tie", "tie"),
        (True, "both_bad", "both_bad"),
    ],
)
def test_a_side_becomes_the_choice_of_the_stored_answer(client, reviewer, a_on_left, side, stored):
    ComparisonFactory(a_on_left=a_on_left)
    c = claim(reviewer)

    response = logged_in(client, reviewer).post(
        f"/compare/{c.pk}/decide", {"side": side, "version": c.version}
    )

    assert response.status_code == 302
    v = ComparisonVote.objects.get(comparison=c)
    assert (v.choice, v.a_on_left) == (stored, a_on_left)
    assert Comparison.objects.get(pk=c.pk).outcome == stored


def test_a_plain_vote_redirects_to_the_next_comparison_then_the_queue(client, reviewer):
    first, second = ComparisonFactory(), ComparisonFactory()
    logged_in(client, reviewer)
    claim(reviewer)

    response = client.post(f"/compare/{first.pk}/decide", {"side": "tie", "version": 1})
    assert response["Location"] == f"/compare/{second.pk}/"
    response = client.post(f"/compare/{second.pk}/decide", {"side": "tie", "version": 1})
    assert response["Location"] == "/compare/"


def test_an_htmx_vote_swaps_in_the_next_comparison(client, reviewer):
    first = ComparisonFactory()
    second = ComparisonFactory(answer_a="next one 5521", answer_b="next one 5522")
    claim(reviewer)

    response = logged_in(client, reviewer).post(
        f"/compare/{first.pk}/decide", {"side": "left", "version": 1}, **HTMX
    )

    assert response.status_code == 200
    assert response["HX-Push-Url"] == f"/compare/{second.pk}/"
    html = response.content.decode()
    assert html.lstrip().startswith("<title>")
    assert f'id="compare-{second.pk}"' in html and "next one 5521" in html
    assert "<html" not in html


def test_an_htmx_vote_on_the_last_one_shows_the_clear_screen(client, reviewer):
    c = ComparisonFactory()
    claim(reviewer)
    response = logged_in(client, reviewer).post(
        f"/compare/{c.pk}/decide", {"side": "left", "version": 1}, **HTMX
    )
    assert response["HX-Push-Url"] == "/compare/"
    assert "Nothing left to compare" in response.content.decode()


def test_a_stale_page_is_refused_and_shown_again_up_to_date(client, reviewer):
    c = ComparisonFactory()
    held = claim(reviewer)

    response = logged_in(client, reviewer).post(
        f"/compare/{c.pk}/decide", {"side": "left", "version": held.version - 1, "reason": "mine"}
    )

    assert response.status_code == 409
    html = response.content.decode()
    assert "out of date" in html
    assert f'name="version" value="{held.version}"' in html
    assert "mine" in html
    assert not ComparisonVote.objects.exists()


def test_a_vote_after_losing_the_hold_gives_back_only_my_text(client, reviewer, other_reviewer):
    c = ComparisonFactory(answer_a="not for you 8812", answer_b="not for you 8813")
    claim(reviewer)
    claims.comparison_release(reviewer=reviewer, comparison_id=c.pk)
    claim(other_reviewer)

    response = logged_in(client, reviewer).post(
        f"/compare/{c.pk}/decide", {"side": "left", "version": 1, "reason": "my words 77"}
    )

    assert response.status_code == 409
    html = response.content.decode()
    assert "my words 77" in html
    assert "not for you" not in html
    assert not ComparisonVote.objects.exists()


def test_a_vote_on_a_lapsed_hold_gives_back_only_my_text(client, reviewer):
    c = ComparisonFactory(answer_a="lapsed 6610", answer_b="lapsed 6611")
    claim(reviewer)
    Comparison.objects.filter(pk=c.pk).update(lease_expires_at=timezone.now())

    logged_in(client, reviewer)
    assert client.get(f"/compare/{c.pk}/").status_code == 404
    response = client.post(
        f"/compare/{c.pk}/decide", {"side": "right", "version": 1, "reason": "my words 78"}
    )

    assert response.status_code == 409
    html = response.content.decode()
    assert "hold on this comparison ended" in html and "my words 78" in html
    assert "lapsed 66" not in html
    assert not ComparisonVote.objects.exists()


def test_a_vote_without_a_side_is_refused(client, reviewer):
    c = ComparisonFactory()
    claim(reviewer)
    response = logged_in(client, reviewer).post(f"/compare/{c.pk}/decide", {"version": 1})
    assert response.status_code == 400
    assert "Choose with one of the buttons" in response.content.decode()
    assert not ComparisonVote.objects.exists()


def test_a_first_four_eyes_vote_says_a_second_reviewer_follows(client, reviewer):
    agent = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    c = ComparisonFactory(agent=agent)
    claim(reviewer)
    response = logged_in(client, reviewer).post(
        f"/compare/{c.pk}/decide", {"side": "left", "version": 1}, follow=True
    )
    assert "a second reviewer will compare" in response.content.decode()
    assert Comparison.objects.get(pk=c.pk).status == "needs_second_review"


# --- skip and the hold ----------------------------------------------------------------------------


def test_skip_gives_it_back_and_moves_on_to_another(client, reviewer):
    first, second = ComparisonFactory(), ComparisonFactory()
    claim(reviewer)

    response = logged_in(client, reviewer).post(f"/compare/{first.pk}/skip")

    assert response["Location"] == f"/compare/{second.pk}/"
    assert Comparison.objects.get(pk=first.pk).status == "pending"
    assert Comparison.objects.get(pk=second.pk).claimed_by_id == reviewer.pk


def test_the_lease_is_renewed_by_the_screen(client, reviewer):
    c = ComparisonFactory()
    claim(reviewer)
    response = logged_in(client, reviewer).post(f"/compare/{c.pk}/lease", **HTMX)
    assert response.status_code == 200
    assert "Held for you" in response.content.decode()


def test_a_lost_lease_says_so(client, reviewer, other_reviewer):
    c = ComparisonFactory()
    claim(other_reviewer)
    response = logged_in(client, reviewer).post(f"/compare/{c.pk}/lease", **HTMX)
    assert "hold on this comparison has ended" in response.content.decode()


# --- adjudication ---------------------------------------------------------------------------------


@pytest.fixture
def disputed(reviewer, other_reviewer):
    agent = AgentFactory(slug="legal-bot", domain="support", required_reviews=2)
    c = ComparisonFactory(agent=agent, a_on_left=False, version_a=SECRET_A, version_b=SECRET_B)
    for user, choice in ((reviewer, "a"), (other_reviewer, "b")):
        held = claim(user)
        services.comparison_decide(
            reviewer=user, comparison_id=held.pk, choice=choice, version=held.version
        )
    assert Comparison.objects.get(pk=c.pk).status == "disputed"
    return c


def test_the_adjudication_page_shows_both_votes_in_screen_terms(client, lead, disputed):
    logged_in(client, lead)
    assert f"/compare/{disputed.pk}/adjudicate" in client.get("/compare/disputed/").content.decode()

    html = client.get(f"/compare/{disputed.pk}/adjudicate").content.decode()

    # a_on_left is False: rita's "a" is the right-hand answer, oscar's "b" the left-hand one.
    assert "Answer 2 is better</strong> <span>by <strong>rita" in html
    assert "Answer 1 is better</strong> <span>by <strong>oscar" in html
    assert SECRET_A not in html and SECRET_B not in html


def test_an_admin_adjudicates_from_the_page(client, lead, disputed):
    response = logged_in(client, lead).post(
        f"/compare/{disputed.pk}/adjudicate", {"side": "left", "reason": "left is right"}
    )
    assert response.status_code == 302
    stored = Comparison.objects.get(pk=disputed.pk)
    assert (stored.status, stored.outcome) == ("done", "b")  # left is B (a_on_left False)
    assert ComparisonVote.objects.get(comparison=disputed, is_adjudication=True).choice == "b"


def test_adjudicating_twice_is_refused(client, lead, disputed):
    logged_in(client, lead)
    client.post(f"/compare/{disputed.pk}/adjudicate", {"side": "left"})
    response = client.post(f"/compare/{disputed.pk}/adjudicate", {"side": "right"})
    assert response.status_code == 409
    assert Comparison.objects.get(pk=disputed.pk).outcome == "b"
