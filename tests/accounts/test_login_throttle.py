"""Login throttling (django-axes): per username and address, on every login form."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

LOCKED = b"Too many failed login attempts"


@pytest.fixture(autouse=True)
def three_tries(settings):
    settings.AXES_FAILURE_LIMIT = 3


def login(client, username, password, path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password})


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_it_locks_a_username_out_from_one_address_after_repeated_failures(reviewer):
    client = Client(REMOTE_ADDR="10.0.0.1")
    assert login(client, "rita", "wrong").status_code == 200
    assert login(client, "rita", "wrong").status_code == 200
    third = login(client, "rita", "wrong")
    assert third.status_code == 429 and LOCKED in third.content
    right = login(client, "rita", "pw-for-tests")  # even the right password now waits
    assert right.status_code == 429 and LOCKED in right.content
    assert b"Forgot your password?" in right.content and b"15 minutes" in right.content
    assert not logged_in(client)


def test_it_tells_how_many_tries_are_left(reviewer):
    client = Client(REMOTE_ADDR="10.0.0.1")
    first = login(client, "rita", "wrong")
    assert b"2 tries left before this login is locked" in first.content
    second = login(client, "rita", "wrong")
    assert b"1 try left before this login is locked" in second.content


def test_it_does_not_lock_the_user_out_from_other_addresses(reviewer):
    attacker = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(3):
        login(attacker, "rita", "wrong")
    rita = Client(REMOTE_ADDR="10.0.0.2")
    assert login(rita, "rita", "pw-for-tests").status_code == 302
    assert logged_in(rita)


def test_it_does_not_lock_out_other_users_behind_the_same_address(reviewer, other_reviewer):
    office = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(3):
        login(office, "rita", "wrong")
    colleague = Client(REMOTE_ADDR="10.0.0.1")
    assert login(colleague, "oscar", "pw-for-tests").status_code == 302
    assert logged_in(colleague)


def test_it_forgets_the_failures_after_a_successful_login(reviewer):
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(2):
        login(client, "rita", "wrong")
    assert login(client, "rita", "pw-for-tests").status_code == 302
    client.post("/accounts/logout/")
    for _ in range(2):
        assert login(client, "rita", "wrong").status_code == 200
    assert login(client, "rita", "pw-for-tests").status_code == 302


def test_it_counts_look_alike_spellings_of_a_username_together(reviewer):
    client = Client(REMOTE_ADDR="10.0.0.1")
    # Authentication strips and NFKC-normalises the username: these are all "rita".
    for spelling in ("rita", " rita ", "ｒｉｔａ"):
        login(client, spelling, "wrong")
    response = login(client, "rita", "pw-for-tests")
    assert response.status_code == 429 and LOCKED in response.content


def test_the_admin_signs_in_through_the_throttled_form_that_tells_tries_left(lead, client):
    lead.is_superuser = True
    lead.save()
    to_login = client.get("/admin/")
    assert to_login.status_code == 302 and to_login["Location"] == "/admin/login/?next=/admin/"
    form = client.get(to_login["Location"])
    assert form.status_code == 302 and form["Location"] == "/accounts/login/?next=/admin/"
    client.post("/admin/login/?next=/admin/", {"username": "lee", "password": "pw-for-tests"})
    assert not logged_in(client)  # the admin's own form is gone: nothing to guess against
    failed = client.post(form["Location"], {"username": "lee", "password": "wrong"})
    assert b"2 tries left before this login is locked" in failed.content
    signed_in = client.post(form["Location"], {"username": "lee", "password": "pw-for-tests"})
    assert signed_in["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_signed_in_non_superuser_gets_a_403_not_a_login_loop(lead, client):
    client.force_login(lead)
    assert client.get("/admin/")["Location"] == "/admin/login/?next=/admin/"
    denied = client.get("/admin/login/?next=/admin/")
    assert denied.status_code == 403 and b"<nav>" in denied.content  # the site's 403 page


def test_it_ignores_forwarded_for_headers_without_trusted_proxies(reviewer):
    for n in range(3):  # a client cannot pick a fresh address per request
        login(Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}"), "rita", "x")
    again = Client(REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert login(again, "rita", "pw-for-tests").status_code == 429


def test_it_reads_the_client_address_behind_trusted_proxies(reviewer, settings):
    settings.TRUSTED_PROXY_COUNT = 1

    def via_proxy(forwarded_for):
        return Client(REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR=forwarded_for)

    for _ in range(3):  # what the client wrote itself (left of the proxy's entry) is ignored
        login(via_proxy("1.2.3.4, 203.0.113.5"), "rita", "wrong")
    locked = via_proxy("203.0.113.5")
    assert login(locked, "rita", "pw-for-tests").status_code == 429
    other = via_proxy("203.0.113.6")  # another client behind the same proxy
    assert login(other, "rita", "pw-for-tests").status_code == 302
