"""Schemathesis against /api/v1/openapi.json: every operation, valid and invalid data, through
the real WSGI app on PostgreSQL. Zero 5xx, and every answer conforms to the schema (status
code, content type, body, headers); every check is on, tuned only where the API's contract
says so (below, with the reason).

The budget is fixed (derandomized, EXAMPLES per operation), so a run is repeatable; it takes
about a minute. Not stateful: the schema declares no links between operations.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation

from accounts.services import token_create
from config.wsgi import application
from reviews.models import ReviewItem
from tests.factories import AgentFactory, InteractionFactory, ReviewItemFactory, UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

EXAMPLES = 25
INGEST = ["/api/v1/interactions", "/api/v1/feedback", "/api/v1/comparisons"]

# Valid data may still be refused with 400 where the schema cannot say why: a reference to
# something that does not exist (an agent slug, a username), a cross-field rule (`from`
# after `to`, `correct` without a new output), a filter the export builder refuses.
SEMANTIC_400 = [
    ("POST", "/api/v1/queue/claim"),
    ("POST", "/api/v1/items/{item_id}/decision"),
    ("POST", "/api/v1/items/{item_id}/assign"),
    ("GET", "/api/v1/items"),
    ("GET", "/api/v1/kpis"),
    ("POST", "/api/v1/exports"),
    ("POST", "/api/v1/exports/{batch_id}/trained"),
    ("GET", "/api/v1/agents/{slug}/regression-set"),
    ("POST", "/api/v1/agents/{slug}/regression-runs"),
]


def _config() -> SchemathesisConfig:
    operations: list[dict] = [
        {
            "include-method": method,
            "include-path": path,
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]
                }
            },
        }
        for method, path in SEMANTIC_400
    ]
    # Bulk ingest stores the valid items of a body and reports the others with their index
    # (DESIGN.md): a body with invalid items is a 200, and `ingest_reports_invalid_items`
    # checks that the invalid items are reported. Too many items is a 413.
    operations.append(
        {
            "include-path": INGEST,
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": ["200", "400", "401", "403", "413", "429"]
                }
            },
        }
    )
    return SchemathesisConfig.from_dict(
        {
            # Unknown query parameters are ignored, as by most HTTP APIs.
            "generation": {"allow-extra-parameters": False},
            "operations": operations,
        }
    )


def ingest_reports_invalid_items(ctx, response, case):
    """A bulk body that violates the item schema and is answered 200 reports item errors."""
    meta = case.meta
    if meta is None or response.status_code != 200 or case.path not in INGEST:
        return None
    if not meta.is_negative_at(ParameterLocation.BODY):
        return None
    answer = response.json()
    assert answer["errors"], f"invalid items accepted without an error: {case.body!r:.500}"
    return None


# Loaded from the running app (the view needs no database), once, at collection.
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application, config=_config())


@pytest.fixture
def auth_headers(transactional_db, settings, tmp_path):
    """A superuser's token (every role), and a little data for the operations to find."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EXPORT_TMP_DIR = tmp_path / "media" / ".export-tmp"
    root = UserFactory(username="fuzz-root", is_staff=True, is_superuser=True)
    UserFactory(username="rita", roles=["reviewer"], domains=["support"])
    agent = AgentFactory(slug="support-bot", domain="support")
    for i in range(3):
        ReviewItemFactory(interaction=InteractionFactory(agent=agent, external_id=f"fz-{i}"))
    assert ReviewItem.objects.count() == 3
    _, secret = token_create(user=root, name="schemathesis")
    return {"Authorization": f"Bearer {secret}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        # The fixture's rows and token are meant to be shared by an operation's examples.
        HealthCheck.function_scoped_fixture,
    ],
)
def test_it_conforms_to_its_openapi_schema(case, auth_headers):
    case.call_and_validate(headers=auth_headers, additional_checks=[ingest_reports_invalid_items])
