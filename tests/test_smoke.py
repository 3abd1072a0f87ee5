import pytest


def test_it_answers_healthz(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["database"] == "ok"


@pytest.mark.postgres
def test_it_runs_on_postgres_when_available(db):
    from django.db import connection

    assert connection.vendor == "postgresql"
