"""Every role clicks through every navigation link in real Chromium (issue 17): no page may
answer an error, log a console error, trip the content security policy or carry a serious or
critical accessibility violation found by axe-core (WCAG 2.1 A and AA rules).

axe-core is the npm package (tests/e2e/axe, installed by `make test`). It is evaluated
through the DevTools protocol, which the page's CSP does not govern, so the policy stays
exactly as strict as in production while the checker runs.

The crawl starts at the home page and follows the links of every <nav> (the top bar, the
console's and the KPI pages' sub-navigation, pagers) and the first link of every table
breadth-first, with the demo data loaded, so pages show tables, charts and forms rather than
empty states.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import Page

from demo.seed import demo_seed
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("transactional_db")

AXE_JS = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
MAX_PAGES = 60  # per role; the crawl below reaches far fewer

# Before any script of the page: every CSP violation the page raises is kept.
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`
    + ` at ${e.sourceFile || "?"}:${e.lineNumber}`);
});
"""

# Leaves: checked, but their own links are not followed (a third-party page with its own
# navigation: Django's admin and the API reference).
LEAVES = ("/admin/", "/api/")
SKIP = ("/accounts/logout",)


@pytest.fixture(scope="module")
def axe_source() -> str:
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS} is missing: run `make install-e2e` (npm ci in tests/e2e/axe)")
    return AXE_JS.read_text()


@pytest.fixture
def demo(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_TMP_DIR = tmp_path / "media" / ".export-tmp"
    return demo_seed(interactions=400)


class Findings:
    """What went wrong on which page, collected over the whole crawl and asserted at the end
    (one failure lists every page's problems)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.visited: list[str] = []
        self.url = ""

    def add(self, what: str) -> None:
        self.problems.append(f"{self.url}: {what}")


def watch(page: Page, findings: Findings) -> None:
    page.add_init_script(WATCH_CSP)
    page.on(
        "console",
        lambda msg: (
            findings.add(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: findings.add(f"uncaught error: {exc}"))


def check_page(page: Page, findings: Findings, axe_source: str) -> None:
    """CSP violations and axe-core's serious / critical WCAG violations of the loaded page."""
    for violation in page.evaluate("window.__csp || []"):
        findings.add(f"CSP: {violation}")
    if page.evaluate("typeof window.axe") == "undefined":
        page.evaluate(axe_source)
    result = page.evaluate(
        "(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: "
        "['violations']})",
        WCAG,
    )
    for violation in result["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = [" ".join(map(str, node["target"])) for node in violation["nodes"][:5]]
            findings.add(
                f"axe {violation['impact']} {violation['id']} ({violation['help']}): "
                + json.dumps(targets)
            )


# Every link of every <nav>, and the first link of each table's rows (one item, agent, pool
# or batch page of each kind), but no downloads.
LINKS = """() => [
  ...document.querySelectorAll("nav a[href]"),
  ...[...document.querySelectorAll("main table tbody")]
    .map((body) => body.querySelector("a[href]:not([download])")).filter(Boolean),
].map((a) => a.href)"""


def nav_links(page: Page, base: str) -> list[str]:
    hrefs = page.evaluate(LINKS)
    out = []
    for href in hrefs:
        url = urljoin(base, href)
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != base or parts.path.startswith(SKIP):
            continue
        out.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return out


def crawl(page: Page, base: str, findings: Findings, axe_source: str, *, extra=()) -> None:
    seen: set[str] = set()
    todo = ["/", *extra]
    while todo and len(seen) < MAX_PAGES:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        findings.url = path
        response = page.goto(base + path)
        page.wait_for_load_state("networkidle")
        status = response.status if response else 0
        if status >= 400:
            findings.add(f"answered {status}")
            continue
        check_page(page, findings, axe_source)
        findings.visited.append(path)
        if not path.startswith(LEAVES):
            todo.extend(link for link in nav_links(page, base) if link not in seen)


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("reviewer", {"/", "/queue/", "/accounts/tokens/"}),
        ("admin", {"/", "/console/", "/console/workload/", "/console/adjudication/", "/exports/"}),
        ("ml", {"/", "/exports/", "/kpis/", "/kpis/agreement/", "/accounts/tokens/"}),
    ],
)
def test_every_page_of_a_role_is_clean(page, live_server, demo, axe_source, role, expected):
    domains = ["support", "legal", "product"] if role == "reviewer" else None
    UserFactory(username=f"crawl-{role}", roles=[role], domains=domains)
    findings = Findings()
    watch(page, findings)
    sign_in(page, live_server.url, f"crawl-{role}")
    crawl(page, live_server.url, findings, axe_source)

    if role == "reviewer":  # the page reviewers spend their day on
        findings.url = "review screen"
        page.goto(f"{live_server.url}/queue/")
        page.get_by_role("button", name="Start reviewing").first.click()
        page.wait_for_url("**/review/*/**")
        page.wait_for_load_state("networkidle")
        check_page(page, findings, axe_source)
        findings.visited.append(page.url)

    assert expected <= set(findings.visited), findings.visited
    assert not findings.problems, "\n".join(findings.problems)


def test_the_superuser_reaches_the_django_admin_and_the_api_reference(
    page, live_server, demo, axe_source
):
    UserFactory(username="crawl-root", roles=["admin"], is_superuser=True, is_staff=True)
    findings = Findings()
    watch(page, findings)
    sign_in(page, live_server.url, "crawl-root")
    crawl(page, live_server.url, findings, axe_source)
    assert {"/admin/", "/api/v1/docs"} <= set(findings.visited), findings.visited
    assert not findings.problems, "\n".join(findings.problems)


def test_the_watchers_catch_what_they_are_for(page, live_server, axe_source):
    """The checks themselves can fail: an inline script added to a page is blocked and
    reported, and an image without a text alternative is a critical axe violation."""
    UserFactory(username="crawl-probe", roles=["ml"])
    findings = Findings()
    watch(page, findings)
    sign_in(page, live_server.url, "crawl-probe")
    findings.url = "/"
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = '1';"
        " document.body.append(s); const i = document.createElement('img');"
        " i.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw='; document.body.append(i); }"
    )
    check_page(page, findings, axe_source)
    assert any("CSP: script-src" in problem for problem in findings.problems), findings.problems
    assert any("axe critical image-alt" in problem for problem in findings.problems)
