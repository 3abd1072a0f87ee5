from datetime import date

import pytest
from django.core.management import CommandError, call_command

from kpis.models import KpiRun, KpiSnapshot


def test_it_recomputes_from_the_command_line(dataset, capsys):
    call_command("recompute_kpis")
    out = capsys.readouterr().out
    assert out.startswith("recomputed ")
    assert "agent-days" in out
    assert KpiSnapshot.objects.filter(agent=dataset.agent, date=date(2026, 11, 2)).exists()
    assert KpiRun.objects.get().trigger == "command"


def test_it_recomputes_one_agent_since_a_day(dataset, capsys):
    call_command("recompute_kpis", "--agent", "shop-bot", "--since", "2026-11-04")
    assert not KpiSnapshot.objects.filter(date=date(2026, 11, 2)).exists()
    assert KpiSnapshot.objects.filter(date=date(2026, 11, 4)).exists()
    run = KpiRun.objects.get()
    assert (run.mode, run.since, run.agent) == ("range", date(2026, 11, 4), dataset.agent)


def test_it_recomputes_everything_with_full(dataset, capsys):
    call_command("recompute_kpis", "--full")
    assert KpiRun.objects.get().mode == "full"
    assert KpiSnapshot.objects.filter(date=date(2026, 11, 3)).exists()  # every day, dense


def test_it_refuses_an_unknown_agent(db):
    with pytest.raises(CommandError, match="unknown agent 'nope'"):
        call_command("recompute_kpis", "--agent", "nope")


def test_it_refuses_a_malformed_date(db):
    with pytest.raises(CommandError, match="not a date"):
        call_command("recompute_kpis", "--since", "yesterday")
