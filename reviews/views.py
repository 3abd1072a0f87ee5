"""Pages of the reviews app. Thin: access checks, a selector, a form, one service, a template.

The review screen is one template (`reviews/review.html`) whose partials are what htmx swaps:
`#screen` (an item), `#lease` (the hold countdown) and `#clear` (the queue is empty).
Every form also works as a plain POST with a redirect, for browsers without JavaScript.
For a minute after a decision, the screens show an Undo toast (`reviews/_undo.html`).
"""

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import push_url, reswap, retarget

from accounts.models import Role
from accounts.permissions import has_role, role_required, user_roles
from reviews import rubrics, screen, selectors, services
from reviews.forms import ClaimForm, DecisionForm, QueueFilterForm, UndoForm
from reviews.models import Review

PAGE_SIZE = 25

# What the review screen is for the viewer: the holder decides; an admin (not holding it)
# reads; the holder whose lease ran out (not yet swept: nobody else has touched the item)
# sees it again with their text; a former holder (the item went back to the queue, someone
# else may hold or have reviewed it since) gets their own text back and nothing more, not
# the item, its reviews or its state (`reviews/former.html`); the reviewer whose decision
# is still the last thing that happened to the item reads it (`selectors.item_decided_by`).
HOLD, READONLY, LOST, FORMER, DECIDED = "hold", "readonly", "lost", "former", "decided"

DONE_MESSAGES = {
    "approve": "Approved.",
    "correct": "Correction saved.",
    "reject": "Rejected.",
    "escalate": "",  # the service says "Escalated to a review lead."
    "skip": "Skipped; it goes back to the queue for someone else.",
}
# The Undo toast: "Approved item #12 · Undo".
UNDO_LABELS = {
    "approve": "Approved",
    "correct": "Corrected",
    "reject": "Rejected",
    "escalate": "Escalated",
    "skip": "Skipped",
}


@login_required
def home(request):
    """Role-aware landing page (DESIGN.md): an admin lands on the console, a reviewer on their
    queue, an ML engineer on the exports; anyone else sees the backlog overview."""
    roles = user_roles(request.user)
    if Role.ADMIN in roles:
        return redirect("console:browser")
    if Role.REVIEWER in roles:
        return redirect("reviews:queue")
    if Role.ML in roles:
        return redirect("retraining:exports")
    return render(request, "reviews/home.html", {"overview": selectors.queue_overview()})


# --- my queue ---------------------------------------------------------------------------------


@role_required(Role.REVIEWER)
@require_GET
def queue(request):
    """What I can claim, counted by agent, reason and age; the items assigned to me."""
    form = _filter_form(request, request.GET or None)
    filters = form.filters()
    scope = _scope(filters)
    assigned = Paginator(selectors.items_assigned_to(request.user, **scope), PAGE_SIZE)
    context = {
        "form": form,
        "filters": filters,
        "filters_qs": _qs(filters),
        "has_domains": bool(selectors.reviewer_domains(request.user)),
        "summary": selectors.reviewer_queue_summary(request.user, **scope),
        "due": selectors.reviewer_queue_due(request.user, **scope),
        "held": selectors.item_held_by(request.user, **scope),
        "today": selectors.reviews_today(request.user),
        "page": assigned.get_page(request.GET.get("page")),
        "undo": None if request.htmx else _undo(request.user),  # the toast is outside #queue
    }
    template = "reviews/queue.html#queue" if request.htmx else "reviews/queue.html"
    return render(request, template, context)


@role_required(Role.REVIEWER)
@require_POST
def queue_claim(request):
    """The "Start reviewing" button: the item I hold, else the next one the claim gives me.
    "Claim again" after a lost hold names its item: that one if it is still free for me,
    else the next one, with a word that it was taken."""
    form = ClaimForm(
        request.POST,
        agents=selectors.agent_choices(),
        domains=selectors.reviewer_domains(request.user),
    )
    if not form.is_valid():
        messages.error(request, "Those filters are not valid any more; choose again.")
        return redirect("reviews:queue")
    filters, wanted = form.filters(), form.cleaned_data["item"]
    scope = _scope(filters)
    held = selectors.item_held_by(request.user, **scope)  # one hold at a time
    item = held or services.item_claim(reviewer=request.user, item_id=wanted, **scope)
    if wanted and held and held.pk != wanted:
        messages.info(request, f"You already hold item #{held.pk}: finish it first.")
    elif wanted and item is None:
        messages.info(
            request, f"Item #{wanted} was taken in the meantime, and nothing else is waiting."
        )
    elif wanted and item.pk != wanted:
        messages.info(request, f"Item #{wanted} was taken in the meantime; here is your next one.")
    if item is None:
        if not wanted:
            messages.info(request, "Nothing left to review here right now. Nice work!")
        return redirect(reverse("reviews:queue") + _qs(filters))
    return redirect(_review_url(item.pk, filters))


@role_required(Role.REVIEWER)
@require_GET
def decisions(request):
    """My recent decisions: what I decided last, each item openable while it is still as I
    left it, and Undo on the latest while it may be undone."""
    context = {
        "decisions": selectors.recent_decisions(request.user),
        "limit": selectors.RECENT_DECISIONS,
    }
    return render(request, "reviews/decisions.html", context)


# --- the review screen ------------------------------------------------------------------------


@role_required(Role.REVIEWER, Role.ADMIN)
@require_GET
def review(request, item_id: int):
    item, mode = _load(request, item_id, decided_ok=True)
    if item is None:
        return screen.gone(request)
    form = _decision_form(item, initial=_initial(item, request.GET))
    return _render_screen(request, item, mode=mode, form=form)


@role_required(Role.REVIEWER)
@require_POST
def review_decide(request, item_id: int):
    """Records my decision, then shows the next item (htmx) or redirects to it."""
    item, mode = _load(request, item_id, former_ok=True)
    if item is None:
        return screen.gone(request)
    form = _decision_form(item, request.POST)
    if not form.is_valid():
        return _render_screen(request, item, mode=mode, form=form, status=400)
    try:
        decision = services.decision_validate(item=item, **form.decision_fields())
        outcome = services.review_submit(
            item=item,
            reviewer=request.user,
            decision=decision,
            expected_version=form.cleaned_data["version"],
        )
    except services.InvalidDecision as exc:
        form.add_service_errors(exc.errors)
        return _render_screen(request, item, mode=mode, form=form, status=400)
    except services.Conflict as exc:
        return _render_conflict(request, item_id, form, str(exc))
    return _after_decision(request, outcome, form.filters())


@role_required(Role.REVIEWER)
@require_POST
def review_lease(request, item_id: int):
    """Extends my hold (the screen polls this every minute while I am active)."""
    item, mode = _load(request, item_id, former_ok=True)
    if item is None:
        return screen.gone(request)
    problem = None
    try:
        services.item_renew_lease(item=item, reviewer=request.user)
    except services.LeaseLost as exc:
        problem, mode = str(exc), LOST
    if request.htmx:
        context = {"item": item, "mode": mode, "lease_live": not problem, "lease_problem": problem}
        return render(request, "reviews/review.html#lease", context)
    if problem:
        messages.error(request, problem)
        return redirect("reviews:queue")
    messages.success(request, "Your hold was extended.")
    return redirect("reviews:review", item_id=item.pk)


@role_required(Role.REVIEWER, Role.ADMIN)
@require_POST
def review_diff(request, item_id: int):
    """The word diff of a correction being written against the agent's output."""
    item, mode = _load(request, item_id)
    if item is None:
        return screen.gone(request)
    diff = selectors.word_diff(item.interaction.output, request.POST.get("corrected_output", ""))
    if request.htmx:
        return render(request, "reviews/_diff.html", {"item": item, "diff": diff})
    # Without JavaScript ("Show changes"): the screen again, with what was typed and the diff.
    form = _decision_form(item, initial={**request.POST.dict(), "verdict": Review.Verdict.CORRECT})
    return _render_screen(request, item, mode=mode, form=form, diff=diff)


@role_required(Role.REVIEWER)
@require_POST
def review_undo(request, item_id: int):
    """Undo (the toast's button, or `u`): takes back my latest decision on the item, which
    is then mine again as before I decided; htmx gets its screen, a plain POST a redirect to
    it. Refused with a message when it is too late or someone else acted on the item."""
    form = UndoForm(request.POST)
    filters = form.filters()
    item = selectors.item_for_review(item_id)
    if item is None:
        return screen.gone(request)
    try:
        services.review_undo(item=item, reviewer=request.user)
    except services.ReviewError as exc:
        return _undo_refused(request, form, str(exc))
    done = f"Undone: item #{item.pk} is yours again; decide it anew."
    if not request.htmx:
        messages.success(request, done)
        return redirect(_review_url(item.pk, filters))
    item = selectors.item_for_review(item_id)  # without the review just removed
    form = _decision_form(item, initial=_initial(item, filters))
    response = _render_screen(request, item, mode=HOLD, form=form, notice=done)
    return push_url(response, _review_url(item.pk, filters))


# --- helpers ----------------------------------------------------------------------------------


def _load(request, item_id: int, *, former_ok: bool = False, decided_ok: bool = False):
    """The item and what the viewer may do with it; (None, None) when they may not see it.

    The holder decides, an admin reads anything, with `former_ok` a reviewer who held the
    item before gets it back (to recover their text after the hold ended), and with
    `decided_ok` a reviewer reads an item still as their decision left it. Everyone else gets
    the same answer as for an item that does not exist: no hint that it does.
    """
    item = selectors.item_for_review(item_id)
    user = request.user
    if item is None:
        return None, None
    if selectors.item_holds(item, user):
        return item, HOLD if selectors.item_lease_live(item) else LOST
    if has_role(user, [Role.ADMIN]):
        return item, READONLY
    if former_ok and selectors.item_claimed_before(item, user):
        return item, FORMER
    if decided_ok and selectors.item_decided_by(item, user):
        return item, DECIDED
    return None, None


def _filter_form(request, data) -> QueueFilterForm:
    return QueueFilterForm(
        data, agents=selectors.agent_choices(), domains=selectors.reviewer_domains(request.user)
    )


def _scope(filters: dict) -> dict:
    """Query filters (`agent_id`, `domain`) from the page's filters (`agent` slug, `domain`)."""
    return {
        "agent_id": selectors.agent_id_for(filters.get("agent")),
        "domain": filters.get("domain") or None,
    }


def _qs(filters: dict) -> str:
    return f"?{urlencode(filters)}" if filters else ""


def _review_url(item_id: int, filters: dict) -> str:
    return reverse("reviews:review", kwargs={"item_id": item_id}) + _qs(filters)


def _next_item(user, filters: dict):
    """The item I already hold (one hold at a time), else the next claim."""
    scope = _scope(filters)
    return selectors.item_held_by(user, **scope) or services.item_claim(reviewer=user, **scope)


def _undo(user):
    """My latest decision while I may still undo it, labelled for the toast; else None."""
    review = selectors.undoable_decision(user)
    if review is not None:
        review.label = UNDO_LABELS[review.verdict]
    return review


def _undo_refused(request, form: UndoForm, message: str):
    """An undo refused: htmx replaces the toast with the reason; a plain POST goes back to the
    page it came from (this host only) with the reason as a message."""
    if request.htmx:
        response = render(request, "reviews/_undo.html", {"undo_problem": message})
        return reswap(retarget(response, "#undo-toast"), "outerHTML")
    messages.error(request, message)
    back = form.cleaned_data.get("next", "") if form.is_valid() else ""
    if not back.startswith("/") or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = reverse("reviews:queue")
    return HttpResponseRedirect(back)  # a path, never a view name (redirect() would try)


def _decision_form(item, data=None, *, initial=None) -> DecisionForm:
    """The decision form of `item`, with its agent's active rubric (one query)."""
    return DecisionForm(
        data,
        initial=initial,
        categories=selectors.category_choices(),
        rubric=rubrics.active_rubric(item.agent_id),
    )


def _initial(item, filters) -> dict:
    return {
        "version": item.version,
        "corrected_output": item.interaction.output,
        "agent": filters.get("agent", ""),
        "domain": filters.get("domain", ""),
    }


def _render_screen(
    request, item, *, mode, form, status=200, notice=None, problem=None, diff=None, decided=None
):
    if mode == FORMER:
        return _render_former(request, item.pk, form, status=status, problem=problem)
    if diff is None and form.editing:
        diff = selectors.word_diff(item.interaction.output, form["corrected_output"].value())
    filters = {k: form[k].value() for k in ("agent", "domain") if form[k].value()}
    context = {
        **screen.item_context(item),
        "mode": mode,
        "lease_live": mode == HOLD,
        "can_decide": mode == HOLD,
        "editable": mode in (HOLD, LOST),
        "form": form,
        "verdicts": screen.verdict_buttons(DecisionForm),
        "filters": filters,
        "filters_qs": _qs(filters),
        "notice": notice,
        "problem": problem or _lost_message(mode),
        "diff": diff,
        "decided": decided,
        "undo": _undo(request.user),
        "undo_next": _review_url(item.pk, filters),
    }
    if request.htmx:
        # htmx swaps only 2xx answers: a form with errors is still a page to show.
        return render(request, "reviews/review.html#screen", context)
    return render(request, "reviews/review.html", context, status=status)


def _render_former(request, item_id: int, form: DecisionForm, *, status: int, problem=None):
    """A former holder's text given back: only what they typed (the form) and the item's id
    (from their own URL). Nothing read from the item may reach this page."""
    filters = {k: form[k].value() for k in ("agent", "domain") if form[k].value()}
    verdict = form["verdict"].value()
    context = {
        "item_id": item_id,
        "form": form,
        "verdict_label": Review.Verdict(verdict).label if verdict in Review.Verdict else "",
        "filters_qs": _qs(filters),
        "problem": problem or _lost_message(FORMER),
    }
    if request.htmx:
        return render(request, "reviews/former.html#former", context)
    return render(request, "reviews/former.html", context, status=status)


def _lost_message(mode) -> str | None:
    if mode not in (LOST, FORMER):
        return None
    return (
        "Your hold on this item ended (it expired or was released), so nothing was saved. "
        "Everything you typed is below: copy it, then claim again from your queue."
    )


def _render_conflict(request, item_id: int, form: DecisionForm, message: str):
    """A decision refused because the hold ended or the page was stale: the screen again with
    everything the reviewer typed. If they hold the item now (a newer claim of theirs), the
    form is brought up to date so that submitting again is a deliberate second click."""
    item, mode = _load(request, item_id, former_ok=True)
    if item is None:
        return screen.gone(request)
    data = request.POST.copy()
    if mode == HOLD:
        data["version"] = str(item.version)
        message += " Check the item and submit again."
    else:
        message += " Everything you typed is below: copy it, then claim again from your queue."
    form = _decision_form(item, data)
    form.is_valid()  # the typed values come back; they were valid a moment ago
    return _render_screen(request, item, mode=mode, form=form, status=409, problem=message)


def _after_decision(request, outcome, filters: dict):
    done = " ".join(m for m in [DONE_MESSAGES[outcome.review.verdict], *outcome.messages] if m)
    next_item = _next_item(request.user, filters)
    if not request.htmx:
        messages.success(request, done)
        if next_item is None:
            messages.info(request, "Your queue is clear.")
            return redirect(reverse("reviews:queue") + _qs(filters))
        return redirect(_review_url(next_item.pk, filters))
    if next_item is None:
        context = {
            "notice": done,
            "filters": filters,
            "filters_qs": _qs(filters),
            "decided": outcome.item.pk,
            "undo": _undo(request.user),
            "undo_next": reverse("reviews:queue") + _qs(filters),
        }
        response = render(request, "reviews/review.html#clear", context)
        return push_url(response, reverse("reviews:queue") + _qs(filters))
    item = selectors.item_for_review(next_item.pk)
    form = _decision_form(item, initial=_initial(item, filters))
    response = _render_screen(
        request,
        item,
        mode=HOLD,
        form=form,
        notice=f"{done} Next item…",
        decided=outcome.item.pk,
    )
    return push_url(response, _review_url(item.pk, filters))
