"""Error pages a signed-in user meets: the 403 keeps the navigation and logs no traceback;
the favicon is there."""

import logging

import pytest
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db


def test_it_keeps_the_navigation_on_the_403_page(client, ml):
    client.force_login(ml)

    response = client.get("/console/")

    assert response.status_code == 403
    page = response.content.decode()
    assert "Not allowed" in page
    assert 'href="/exports/"' in page and 'href="/kpis/"' in page  # ml's own navigation
    assert ">Log out<" in page


def test_it_logs_an_ordinary_403_in_one_line_without_a_traceback(client, ml, caplog):
    client.force_login(ml)
    handler = logging.getLogger().handlers[0]

    with caplog.at_level(logging.WARNING, logger="django.request"):
        client.get("/console/")

    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.getMessage() == "Forbidden (Permission denied): /console/"
    handler.filter(record)  # the console handler's filters, as configured in settings
    assert record.exc_info is None
    assert "Traceback" not in handler.format(record)


def test_it_links_a_favicon_on_every_page(client, reviewer):
    login = client.get("/accounts/login/").content.decode()
    client.force_login(reviewer)
    page = client.get("/queue/").content.decode()

    assert 'rel="icon"' in page and "coachdesk/favicon.svg" in page
    assert "coachdesk/favicon.svg" in login


def test_it_sends_favicon_ico_to_the_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 301
    assert response["Location"].endswith("coachdesk/favicon.svg")
    assert finders.find("coachdesk/favicon.svg")  # the file the redirect names exists
