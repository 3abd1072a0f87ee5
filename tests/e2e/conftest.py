"""Browser tests: real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright
against pytest-django's `live_server`. Every test here is marked `e2e`.

The sync Playwright API runs an event loop in this thread, so ORM calls in the same test
need DJANGO_ALLOW_ASYNC_UNSAFE (STACK.md).
"""

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PASSWORD = "pw-for-tests"  # tests/factories.UserFactory


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _chromium_present():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("COACHDESK_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1360, "height": 900}}


@pytest.fixture
def login(page, live_server):
    """login(username) signs in through the real login form and returns the page."""

    def sign_in(username: str, password: str = PASSWORD, next_url: str = "/"):
        page.goto(f"{live_server.url}/accounts/login/?next={next_url}")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    return sign_in


@pytest.fixture
def screenshot(page):
    """screenshot(name) saves docs/screenshots/<name>.png (committed, shown in the README)."""

    def take(name: str, **kwargs):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), **kwargs)

    return take
