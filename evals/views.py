"""Pages of the pairwise review queue. Thin: role checks, a read, a form, one service.

The comparison screen (`evals/compare.html`) is blind: the two answers are "Answer 1" (left)
and "Answer 2" (right), in the order drawn for the comparison (`a_on_left`); nothing on the
page names a version or says which stored answer is which. Its partials are what htmx swaps:
`#screen` (a comparison), `#lease` (the hold) and `#clear` / `#lost` (nothing to show).
Every form also works as a plain POST with a redirect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url

from accounts.models import Role
from accounts.permissions import has_role, role_required
from evals import claims, services
from evals.forms import SIDES, AdjudicationForm, VoteForm, choice_for, side_for
from evals.models import Comparison
from reviews.screen import _recent_turns
from reviews.selectors import reviewer_domains, transcript

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django_htmx.middleware import HtmxDetails


class Request(HttpRequest):
    """A request as these views see it: the role decorators let only signed-in users in,
    and django-htmx's middleware sets `htmx`."""

    user: User  # type: ignore[assignment]
    htmx: HtmxDetails


HOLD, READONLY = "hold", "readonly"
DONE_MESSAGES = {
    "left": "Answer 1 chosen.",
    "right": "Answer 2 chosen.",
    "tie": "Recorded as a tie.",
    "both_bad": "Recorded: both bad.",
}


# --- the queue ----------------------------------------------------------------------------------


@role_required(Role.REVIEWER)
@require_GET
def queue(request: Request) -> HttpResponse:
    """How many comparisons wait for me, by agent; "Start comparing"."""
    claimable = claims.claimable_comparisons(request.user)
    by_agent = list(
        claimable.values("agent__name").annotate(n=Count("pk")).order_by("-n", "agent__name")
    )
    context = {
        "total": sum(row["n"] for row in by_agent),
        "by_agent": by_agent,
        "held": claims.comparison_held_by(request.user),
        "has_domains": bool(reviewer_domains(request.user)),
    }
    return render(request, "evals/queue.html", context)


@role_required(Role.REVIEWER)
@require_POST
def claim(request: Request) -> HttpResponse:
    """The "Start comparing" button: the comparison I hold, else the next one claimed."""
    comparison = claims.comparison_claim(reviewer=request.user)
    if comparison is None:
        messages.info(request, "Nothing left to compare right now.")
        return redirect("evals:queue")
    return redirect("evals:compare", comparison_id=comparison.pk)


# --- the comparison screen ------------------------------------------------------------------------


@role_required(Role.REVIEWER, Role.ADMIN)
@require_GET
def compare(request: Request, comparison_id: int) -> HttpResponse:
    """The holder compares; an admin (not holding it) reads; anyone else: not found."""
    comparison, mode = _load(request, comparison_id)
    if comparison is None or mode is None:
        return _gone(request)
    form = VoteForm(initial={"version": comparison.version})
    return _render_screen(request, comparison, mode=mode, form=form)


@role_required(Role.REVIEWER)
@require_POST
def decide(request: Request, comparison_id: int) -> HttpResponse:
    """Records my vote (left / right translated to A / B), then shows the next comparison
    (htmx) or redirects to it; back to the queue when none is left."""
    form = VoteForm(request.POST)
    comparison = claims.comparison_for_screen(comparison_id)
    if comparison is None:
        return _gone(request)
    if not form.is_valid():
        mode = HOLD if comparison.claimed_by_id == request.user.pk else None
        if mode is None:
            return _gone(request)
        return _render_screen(request, comparison, mode=mode, form=form, status=400)
    side = form.cleaned_data["side"]
    try:
        outcome = services.comparison_decide(
            reviewer=request.user,
            comparison_id=comparison_id,
            choice=choice_for(side, comparison.a_on_left),
            reason=form.cleaned_data["reason"],
            version=form.cleaned_data["version"],
            seconds_spent=form.cleaned_data["seconds_spent"],
        )
    except services.InvalidVote as exc:
        for name, error in exc.errors.items():
            form.add_error(name if name in form.fields else None, error)
        return _render_screen(request, comparison, mode=HOLD, form=form, status=400)
    except services.Conflict as exc:
        return _render_conflict(request, comparison_id, form, str(exc))
    done = " ".join([DONE_MESSAGES[side], *outcome.messages])
    return _next(request, done, decided=comparison_id)


@role_required(Role.REVIEWER)
@require_POST
def skip(request: Request, comparison_id: int) -> HttpResponse:
    """Gives the comparison back to the queue and moves on to another one."""
    try:
        claims.comparison_release(reviewer=request.user, comparison_id=comparison_id)
    except services.ComparisonNotFound:
        return _gone(request)
    except services.Conflict as exc:
        messages.error(request, str(exc))
        return redirect("evals:queue")
    done = "Skipped; it goes back to the queue."
    return _next(request, done, decided=comparison_id, exclude=(comparison_id,))


@role_required(Role.REVIEWER)
@require_POST
def lease(request: Request, comparison_id: int) -> HttpResponse:
    """Extends my hold (the screen polls this every minute)."""
    problem = None
    try:
        comparison = claims.comparison_renew_lease(
            reviewer=request.user, comparison_id=comparison_id
        )
    except services.LeaseLost as exc:
        problem = str(exc)
        comparison = None
    if request.htmx:
        context = {"comparison": comparison, "comparison_id": comparison_id, "mode": HOLD}
        context["lease_problem"] = problem
        return render(request, "evals/compare.html#lease", context)
    if problem:
        messages.error(request, problem)
        return redirect("evals:queue")
    messages.success(request, "Your hold was extended.")
    return redirect("evals:compare", comparison_id=comparison_id)


# --- adjudication (admins) ------------------------------------------------------------------------


@role_required(Role.ADMIN)
@require_GET
def disputed(request: Request) -> HttpResponse:
    """Comparisons whose two reviewers disagreed, oldest first."""
    rows = (
        Comparison.objects.filter(status=Comparison.Status.DISPUTED)
        .select_related("agent")
        .order_by("updated_at", "pk")[:200]
    )
    return render(request, "evals/disputed.html", {"comparisons": rows})


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def adjudicate(request: Request, comparison_id: int) -> HttpResponse:
    """A disputed comparison, both votes (in screen terms), and the admin's final choice."""
    comparison = claims.comparison_for_screen(comparison_id)
    if comparison is None:
        return _gone(request)
    form = AdjudicationForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.comparison_adjudicate(
                    admin=request.user,
                    comparison_id=comparison_id,
                    choice=choice_for(form.cleaned_data["side"], comparison.a_on_left),
                    reason=form.cleaned_data["reason"],
                )
            except services.ComparisonError as exc:
                form.add_error(None, str(exc))
                status = 409
            else:
                messages.success(request, f"Comparison #{comparison_id} adjudicated.")
                return redirect("evals:disputed")
        else:
            status = 400
    context = {
        **_comparison_context(comparison),
        "form": form,
        "votes": [
            {
                "vote": v,
                "side": dict((s, label) for s, label, _ in SIDES)[
                    side_for(v.choice, comparison.a_on_left)
                ],
            }
            for v in comparison.votes_list  # type: ignore[attr-defined]
        ],
        "sides": SIDES,
    }
    return render(request, "evals/adjudicate.html", context, status=status)


# --- helpers --------------------------------------------------------------------------------------


def _load(request: Request, comparison_id: int) -> tuple[Comparison | None, str | None]:
    """The comparison and what the viewer may do with it: the holder (live lease) votes, an
    admin reads; anyone else gets the answer of a comparison that does not exist."""
    comparison = claims.comparison_for_screen(comparison_id)
    if comparison is None:
        return None, None
    if (
        comparison.status == Comparison.Status.CLAIMED
        and comparison.claimed_by_id == request.user.pk
        and comparison.lease_expires_at is not None
        and comparison.lease_expires_at > timezone.now()
    ):
        return comparison, HOLD
    if has_role(request.user, [Role.ADMIN]):
        return comparison, READONLY
    return None, None


def _gone(request: Request) -> HttpResponse:
    """A comparison that does not exist or that the viewer may not see: the same answer."""
    return render(request, "evals/gone.html", status=404)


def _comparison_context(comparison: Comparison) -> dict:
    """What every page showing a comparison needs: the conversation once, then the answers
    in the order drawn for it. Version names stay out of the context on purpose."""
    if comparison.a_on_left:
        left, right = comparison.answer_a, comparison.answer_b
    else:
        left, right = comparison.answer_b, comparison.answer_a
    return {
        "comparison": comparison,
        "comparison_id": comparison.pk,
        "left_answer": left,
        "right_answer": right,
        **_recent_turns(transcript(comparison.context)),
    }


def _render_screen(
    request: Request,
    comparison: Comparison,
    *,
    mode: str,
    form: VoteForm,
    status: int = 200,
    notice: str | None = None,
    problem: str | None = None,
) -> HttpResponse:
    context = {
        **_comparison_context(comparison),
        "mode": mode,
        "can_decide": mode == HOLD,
        "form": form,
        "sides": SIDES,
        "notice": notice,
        "problem": problem,
        "second_review": any(
            not v.is_adjudication
            for v in comparison.votes_list  # type: ignore[attr-defined]
        ),
    }
    if request.htmx:
        # htmx swaps only 2xx answers: a refused vote is still a screen to show.
        return render(request, "evals/compare.html#screen", context)
    return render(request, "evals/compare.html", context, status=status)


def _render_conflict(
    request: Request, comparison_id: int, form: VoteForm, message: str
) -> HttpResponse:
    """A vote refused: if I hold the comparison now (a stale page of a newer claim of mine),
    the screen again, brought up to date; else only what I typed, nothing of the comparison."""
    comparison, mode = _load(request, comparison_id)
    if comparison is not None and mode == HOLD:
        data = request.POST.copy()
        data["version"] = str(comparison.version)
        fresh = VoteForm(data)
        fresh.is_valid()
        message += " Check the answers and choose again."
        return _render_screen(
            request, comparison, mode=HOLD, form=fresh, status=409, problem=message
        )
    context = {"problem": message, "reason": form.cleaned_data.get("reason", "")}
    if request.htmx:
        return render(request, "evals/compare.html#lost", context)
    return render(request, "evals/lost.html", context, status=409)


def _next(
    request: Request, done: str, *, decided: int, exclude: tuple[int, ...] = ()
) -> HttpResponse:
    """After a vote or a skip: the next comparison (the one I hold, else a new claim)."""
    next_one = claims.comparison_claim(reviewer=request.user, exclude=exclude)
    queue_url = reverse("evals:queue")
    if not request.htmx:
        messages.success(request, done)
        if next_one is None:
            messages.info(request, "Nothing left to compare.")
            return redirect(queue_url)
        return redirect("evals:compare", comparison_id=next_one.pk)
    if next_one is None:
        response = render(request, "evals/compare.html#clear", {"notice": done})
        return push_url(response, queue_url)
    comparison = claims.comparison_for_screen(next_one.pk)
    assert comparison is not None  # claimed by me a moment ago
    form = VoteForm(initial={"version": comparison.version})
    response = _render_screen(
        request, comparison, mode=HOLD, form=form, notice=f"{done} Next comparison…"
    )
    return push_url(response, reverse("evals:compare", kwargs={"comparison_id": comparison.pk}))
