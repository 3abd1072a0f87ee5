"""The admins' comparison list (/compare/manage/): access, filters, assigning the selected
comparisons, escaping, and a flat query count."""

import pytest
from django.contrib.messages import get_messages

from evals import claims
from evals.models import Comparison
from tests.evals.factories import ComparisonFactory, comparisons_make
from tests.factories import AgentFactory

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]
XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PAGE = "/compare/manage/"
ASSIGN = "/compare/manage/assign"


def logged_in(client, user):
    client.force_login(user)
    return client


def listed(response) -> set[int]:
    """The comparison ids whose checkbox is on the page."""
    import re

    assert response.status_code == 200
    html = response.content.decode()
    return {int(pk) for pk in re.findall(r'name="ids" value="(\d+)"', html)}


def message_texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- access ---------------------------------------------------------------------------------------


def test_admins_see_the_page(client, lead, reviewer):
    c = ComparisonFactory()
    response = logged_in(client, lead).get(PAGE)
    assert response.status_code == 200
    assert listed(response) == {c.pk}
    html = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in html
    # The reviewer select offers active reviewers only.
    assert '<option value="rita">rita</option>' in html
    assert '<option value="lee">' not in html


@pytest.mark.parametrize("persona", ["reviewer", "ml"])
def test_other_roles_are_forbidden_both_pages(client, request, persona):
    c = ComparisonFactory()
    user = request.getfixturevalue(persona)
    logged_in(client, user)
    assert client.get(PAGE).status_code == 403
    assert client.post(ASSIGN, {"ids": [c.pk], "reviewer": "rita"}).status_code == 403
    c.refresh_from_db()
    assert c.assigned_to is None


def test_anonymous_users_go_to_the_login_page(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_assign_needs_a_post(client, lead):
    assert logged_in(client, lead).get(ASSIGN).status_code == 405


def test_the_assign_checks_the_csrf_token(lead, reviewer):
    from django.test import Client

    c = ComparisonFactory()
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(lead)
    assert csrf_client.post(ASSIGN, {"ids": [c.pk], "reviewer": "rita"}).status_code == 403
    c.refresh_from_db()
    assert c.assigned_to is None


# --- the list -------------------------------------------------------------------------------------


def test_the_default_shows_open_comparisons_and_the_filters_narrow_it(client, lead, reviewer):
    billing = AgentFactory(slug="billing-bot", name="Billing bot", domain="billing")
    pending = ComparisonFactory()
    second = ComparisonFactory(status=Comparison.Status.NEEDS_SECOND_REVIEW)
    claimed = ComparisonFactory(status=Comparison.Status.CLAIMED, claimed_by=reviewer)
    done = ComparisonFactory(status=Comparison.Status.DONE)
    disputed = ComparisonFactory(status=Comparison.Status.DISPUTED)
    other_agent = ComparisonFactory(agent=billing, domain="billing")
    regression = ComparisonFactory(kind=Comparison.Kind.REGRESSION, version_b="reference")
    assigned = ComparisonFactory(assigned_to=reviewer)
    logged_in(client, lead)

    open_ids = {pending.pk, second.pk, claimed.pk, other_agent.pk, regression.pk, assigned.pk}
    assert listed(client.get(PAGE)) == open_ids
    assert listed(client.get(PAGE, {"status": "any"})) == open_ids | {done.pk, disputed.pk}
    assert listed(client.get(PAGE, {"status": "done"})) == {done.pk}
    assert listed(client.get(PAGE, {"agent": "billing-bot"})) == {other_agent.pk}
    assert listed(client.get(PAGE, {"domain": "billing"})) == {other_agent.pk}
    assert listed(client.get(PAGE, {"kind": "regression"})) == {regression.pk}
    assert listed(client.get(PAGE, {"assigned_to": "rita"})) == {assigned.pk}
    assert listed(client.get(PAGE, {"assigned_to": "-"})) == open_ids - {assigned.pk}
    # Filters combine.
    assert listed(client.get(PAGE, {"agent": "support-bot", "kind": "regression"})) == {
        regression.pk
    }


def test_an_unknown_filter_value_lists_nothing(client, lead):
    ComparisonFactory()
    response = logged_in(client, lead).get(PAGE, {"status": "bogus"})
    assert listed(response) == set()
    assert "These filters are invalid" in response.content.decode()


def test_the_columns_and_the_empty_state(client, lead, reviewer, other_reviewer):
    logged_in(client, lead)
    empty = client.get(PAGE).content.decode()
    assert "No comparisons match these filters." in empty

    c = ComparisonFactory(
        version_a="zeta-build-7731",
        version_b="omega-build-9942",
        status=Comparison.Status.CLAIMED,
        claimed_by=other_reviewer,
        assigned_to=reviewer,
    )
    html = client.get(PAGE).content.decode()
    assert f"#{c.pk}" in html
    assert "Support bot" in html
    assert "zeta-build-7731 vs omega-build-9942" in html
    assert "0 / 1" in html
    assert ">rita<" in html and ">oscar<" in html
    # Neither the answers nor the side order they are shown in are on the page.
    assert c.answer_a not in html and c.answer_b not in html
    assert "a_on_left" not in html


def test_it_pages_by_fifty(client, lead):
    comparisons_make(51)
    logged_in(client, lead)
    first = client.get(PAGE)
    assert len(listed(first)) == 50
    assert "Page 1 of 2" in first.content.decode()
    assert len(listed(client.get(PAGE, {"page": 2}))) == 1


def test_agent_names_and_domains_are_escaped(client, lead):
    agent = AgentFactory(slug="xss-bot", name=XSS, domain="x")
    ComparisonFactory(agent=agent, domain=XSS)
    html = logged_in(client, lead).get(PAGE).content.decode()
    assert XSS not in html
    assert XSS_ESCAPED in html


def test_the_query_count_is_flat(client, lead, reviewer, django_assert_max_num_queries):
    logged_in(client, lead)
    comparisons_make(2, assigned_to=reviewer)
    with django_assert_max_num_queries(12) as small:
        assert client.get(PAGE).status_code == 200
    comparisons_make(28, status=Comparison.Status.CLAIMED, claimed_by=reviewer)
    with django_assert_max_num_queries(len(small.captured_queries)) as large:
        assert len(listed(client.get(PAGE))) == 30
    assert len(large.captured_queries) == len(small.captured_queries)


# --- assigning ------------------------------------------------------------------------------------


def test_assigning_the_selected_skips_the_closed_one_and_says_why(client, lead, reviewer):
    first, second = comparisons_make(2)
    closed = ComparisonFactory(status=Comparison.Status.DONE)
    logged_in(client, lead)
    response = client.post(
        ASSIGN,
        {"ids": [first.pk, second.pk, closed.pk], "reviewer": "rita", "agent": "support-bot"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/compare/manage/?agent=support-bot"
    assert message_texts(response) == ["Assigned 2 comparisons to rita. Skipped: 1 not open."]
    assert set(Comparison.objects.filter(assigned_to=reviewer).values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }
    closed.refresh_from_db()
    assert closed.assigned_to is None


def test_the_assignees_claim_takes_an_assigned_one_first(client, lead, reviewer):
    # Older and higher priority, but not assigned: the claim still takes the assigned one.
    ComparisonFactory(priority=10)
    assigned = ComparisonFactory()
    logged_in(client, lead).post(ASSIGN, {"ids": [assigned.pk], "reviewer": "rita"})
    claimed = claims.comparison_claim(reviewer=reviewer)
    assert claimed is not None and claimed.pk == assigned.pk


def test_assigning_needs_a_selection_and_an_active_reviewer(client, lead, reviewer, ml):
    c = ComparisonFactory()
    logged_in(client, lead)
    none_selected = client.post(ASSIGN, {"reviewer": "rita"})
    assert none_selected.status_code == 302
    assert message_texts(none_selected) == ["Select at least one comparison to assign."]
    not_a_reviewer = client.post(ASSIGN, {"ids": [c.pk], "reviewer": "mo"})
    no_reviewer = ["Choose an active reviewer; nothing was assigned."]
    assert message_texts(not_a_reviewer)[-1:] == no_reviewer
    reviewer.is_active = False
    reviewer.save(update_fields=["is_active"])
    inactive = client.post(ASSIGN, {"ids": [c.pk], "reviewer": "rita"})
    assert message_texts(inactive)[-1:] == no_reviewer
    garbage = client.post(ASSIGN, {"ids": ["x"], "reviewer": "rita"})
    assert message_texts(garbage)[-1:] == ["The selection could not be read; nothing was assigned."]
    c.refresh_from_db()
    assert c.assigned_to is None


def test_the_redirect_keeps_only_known_filters(client, lead, reviewer):
    c = ComparisonFactory()
    response = logged_in(client, lead).post(
        ASSIGN,
        {"ids": [c.pk], "reviewer": "rita", "status": "any", "next": "https://evil.example"},
    )
    assert response["Location"] == "/compare/manage/?status=any"


def test_the_disputed_page_and_the_console_nav_link_here(client, lead):
    logged_in(client, lead)
    assert 'href="/compare/manage/"' in client.get("/compare/disputed/").content.decode()
    assert 'href="/compare/manage/"' in client.get("/console/workload/").content.decode()
