"""Reads of the evals: a regression run's summary, win rates of version pairs with the
position-bias check, and the per-version lines of the KPI page. Flat: a handful of grouped
queries whatever the number of runs, answers or votes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db.models import Count, Q

from agents.models import Agent
from evals.models import Comparison, ComparisonVote, RegressionAnswer, RegressionRun
from evals.stats import percent_text, proportion, wilson
from retraining.models import ExportBatch

Outcome = RegressionAnswer.Outcome
Choice = Comparison.Choice


def agent_by_slug(slug: str) -> Agent | None:
    return Agent.objects.filter(slug=slug).first()


def run_get(run_id: int) -> RegressionRun | None:
    return RegressionRun.objects.select_related("agent").filter(pk=run_id).first()


def _trained_on(agent_id: int, versions: set[str]) -> dict[str, list[int]]:
    """Batch ids (oldest first) marked as used to train each of `versions`."""
    batches: dict[str, list[int]] = defaultdict(list)
    if versions:
        rows = (
            ExportBatch.objects.filter(agent_id=agent_id, trained_agent_version__in=versions)
            .exclude(status=ExportBatch.Status.FAILED)
            .order_by("created_at", "pk")
            .values_list("trained_agent_version", "pk")
        )
        for version, pk in rows:
            batches[version].append(pk)
    return batches


def _sentence(version: str, share: dict[str, Any], sources: list[str]) -> str:
    """`2026.11.1 fixes 71% [64–77%] of what reviewers corrected in 2026.10.1`."""
    named = f"{', '.join(sources[:-1])} and {sources[-1]}" if len(sources) > 1 else "".join(sources)
    where = f" in {named}" if named else ""
    if share["value"] is None:
        return f"{version}: no answer judged yet of what reviewers corrected{where}"
    return f"{version} fixes {percent_text(share)} of what reviewers corrected{where}"


def runs_summaries(runs: list[RegressionRun]) -> list[dict[str, Any]]:
    """Each run's summary (see `run_summary`), in three queries for all of them: outcome
    counts, the versions the answered cases came from, the batches of the runs' versions."""
    if not runs:
        return []
    ids = [run.pk for run in runs]
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for run_id, outcome, n in (
        RegressionAnswer.objects.filter(run_id__in=ids)
        .values_list("run_id", "outcome")
        .annotate(n=Count("pk"))
        .order_by()
    ):
        counts[run_id][outcome] = n
    sources: dict[int, list[str]] = defaultdict(list)
    for run_id, version in (
        RegressionAnswer.objects.filter(run_id__in=ids)
        .values_list("run_id", "item__interaction__agent_version")
        .distinct()
        .order_by("run_id", "item__interaction__agent_version")
    ):
        sources[run_id].append(version or "an unnamed version")
    batches: dict[str, list[int]] = {}
    for agent_id in {run.agent_id for run in runs}:
        versions = {run.agent_version for run in runs if run.agent_id == agent_id}
        batches.update(_trained_on(agent_id, versions))
    return [
        _summary(run, counts[run.pk], sources[run.pk], batches.get(run.agent_version, []))
        for run in runs
    ]


def _summary(
    run: RegressionRun, counts: dict[str, int], sources: list[str], batches: list[int]
) -> dict[str, Any]:
    fixed, still_wrong = counts.get(Outcome.FIXED, 0), counts.get(Outcome.STILL_WRONG, 0)
    worse, pending = counts.get(Outcome.WORSE, 0), counts.get(Outcome.PENDING, 0)
    # Share fixed among the judged answers: pending ones are not counted either way.
    share = proportion(fixed, fixed + still_wrong + worse)
    return {
        "id": run.pk,
        "agent": run.agent.slug,
        "agent_version": run.agent_version,
        "label": run.label,
        "filters": run.filters,
        "created_at": run.created_at,
        "fixed": fixed,
        "still_wrong": still_wrong,
        "worse": worse,
        "pending": pending,
        "total": fixed + still_wrong + worse + pending,
        "share_fixed": share,
        "case_versions": sources,
        "trained_on_batches": batches,
        "sentence": _sentence(run.agent_version, share, sources),
    }


def run_summary(run: RegressionRun) -> dict[str, Any]:
    """Fixed, still wrong, worse, pending review, total; the share fixed = fixed / (fixed +
    still wrong + worse) with its 95% Wilson interval; the versions the cases came from; the
    batches the run's version was trained on; the result as one sentence."""
    return runs_summaries([run])[0]


# --- win rates -----------------------------------------------------------------------------


def _bias(left: int, decisive: int) -> dict[str, Any]:
    """Share of decisive votes won by the left answer; flagged when its interval excludes
    one half (reviewers favour a side, whatever the answers)."""
    low, high = wilson(left, decisive)
    flagged = low is not None and high is not None and (low > 0.5 or high < 0.5)
    return {**proportion(left, decisive), "flagged": flagged}


def win_rates(agent: Agent) -> dict[str, Any]:
    """Per (version A, version B) pair of the agent's done `versions` comparisons, as
    posted (A and B are not swapped to merge pairs): wins of A, wins of B, ties, both bad;
    the win rate of A = A wins / (A wins + B wins) with its Wilson interval; and the
    position-bias check of the pair's votes (not adjudications): the share of decisive
    votes (A or B) the answer shown on the left won. `overall_position_bias` pools every
    pair. Two queries."""
    done = Comparison.objects.filter(
        agent=agent, kind=Comparison.Kind.VERSIONS, status=Comparison.Status.DONE
    )
    pairs: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for version_a, version_b, outcome, n in (
        done.values_list("version_a", "version_b", "outcome").annotate(n=Count("pk")).order_by()
    ):
        pairs[version_a, version_b][outcome] = n
    left_won = Q(choice=Choice.A, a_on_left=True) | Q(choice=Choice.B, a_on_left=False)
    votes: dict[tuple[str, str], tuple[int, int]] = {}
    for version_a, version_b, left, decisive in (
        ComparisonVote.objects.filter(
            comparison__in=done, is_adjudication=False, choice__in=(Choice.A, Choice.B)
        )
        .values_list("comparison__version_a", "comparison__version_b")
        .annotate(left=Count("pk", filter=left_won), decisive=Count("pk"))
        .order_by()
    ):
        votes[version_a, version_b] = (left, decisive)
    rows = []
    for (version_a, version_b), counts in sorted(pairs.items()):
        a, b = counts.get(Choice.A, 0), counts.get(Choice.B, 0)
        left, decisive = votes.get((version_a, version_b), (0, 0))
        rows.append(
            {
                "version_a": version_a,
                "version_b": version_b,
                "a_wins": a,
                "b_wins": b,
                "ties": counts.get(Choice.TIE, 0),
                "both_bad": counts.get(Choice.BOTH_BAD, 0),
                "total": sum(counts.values()),
                "win_rate_a": proportion(a, a + b),
                "position_bias": _bias(left, decisive),
            }
        )
    left_all = sum(left for left, _ in votes.values())
    decisive_all = sum(decisive for _, decisive in votes.values())
    return {"pairs": rows, "overall_position_bias": _bias(left_all, decisive_all)}


# --- the KPI page's section ------------------------------------------------------------------


def loop_by_version(agent: Agent) -> list[dict[str, Any]]:
    """Per version with a regression run or a version comparison (by version, descending): the
    batches it was trained on, its runs' results and the win rates of the pairs it is in."""
    runs = list(RegressionRun.objects.filter(agent=agent).select_related("agent"))
    summaries = runs_summaries(runs)
    rates = win_rates(agent)
    versions: dict[str, dict[str, Any]] = {}

    def entry(version: str) -> dict[str, Any]:
        return versions.setdefault(
            version, {"version": version, "runs": [], "pairs": [], "batches": []}
        )

    for summary in summaries:
        entry(summary["agent_version"])["runs"].append(summary)
    for pair in rates["pairs"]:
        pair = {
            **pair,
            "win_rate_text": percent_text(pair["win_rate_a"]),
            "bias_text": percent_text(pair["position_bias"]),
        }
        entry(pair["version_a"])["pairs"].append(pair)
        if pair["version_b"] != pair["version_a"]:
            entry(pair["version_b"])["pairs"].append(pair)
    batches = _trained_on(agent.pk, set(versions))
    for version, row in versions.items():
        row["batches"] = batches.get(version, [])
    return sorted(versions.values(), key=lambda row: row["version"], reverse=True)
