"""The lead's adjudication pages: disputed and escalated items, and the final decision.

The decision itself is `reviews.services.item_adjudicate` (the reviews app owns the item's
states); these pages show the reviews side by side through the review screen's parts.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.models import Role
from accounts.permissions import role_required
from console.forms import AdjudicationForm
from reviews import rubrics, screen, selectors, services
from reviews.models import Review

PAGE_SIZE = 25
ADJUDICATED = {"approve": "approved", "correct": "corrected", "reject": "rejected"}


@role_required(Role.ADMIN)
@require_GET
def adjudication_list(request):
    """Disputed and escalated items, oldest first, with the verdicts that disagree."""
    page = Paginator(selectors.disputed_items(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "console/adjudication_list.html", {"page": page})


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def adjudication_detail(request, item_id: int):
    """All reviews side by side and the lead's final decision (`services.item_adjudicate`)."""
    item = selectors.item_for_review(item_id)
    if item is None:
        return screen.gone(request)
    categories = selectors.category_choices()
    rubric = rubrics.active_rubric(item.agent_id)
    context: dict = {"problem": None, "diff": None}
    status = 200
    if request.method == "GET":
        form = AdjudicationForm(
            initial={"corrected_output": item.interaction.output},
            categories=categories,
            rubric=rubric,
        )
    elif "preview" in request.POST:  # "Show changes" without JavaScript
        form = AdjudicationForm(
            initial={**request.POST.dict(), "verdict": Review.Verdict.CORRECT},
            categories=categories,
            rubric=rubric,
        )
        context["diff"] = selectors.word_diff(
            item.interaction.output, request.POST.get("corrected_output", "")
        )
    else:
        form = AdjudicationForm(request.POST, categories=categories, rubric=rubric)
        if form.is_valid():
            try:
                decision = services.decision_validate(item=item, **form.decision_fields())
                outcome = services.item_adjudicate(item=item, admin=request.user, decision=decision)
            except services.InvalidDecision as exc:
                form.add_service_errors(exc.errors)
            except services.Conflict as exc:
                context["problem"] = f"{exc} Nothing was saved; your text is below."
                item, status = selectors.item_for_review(item_id), 409
            else:
                done = ADJUDICATED[outcome.review.verdict]
                messages.success(request, f"Item #{item.pk} {done}. That decision is final.")
                return redirect("console:adjudication_list")
    can_decide = item.status == item.Status.DISPUTED
    context.update(
        screen.item_context(item),
        form=form,
        verdicts=screen.verdict_buttons(AdjudicationForm),
        can_decide=can_decide,
        editable=can_decide,
    )
    if form.is_bound and form.errors:
        status = 400
    return render(request, "console/adjudication_detail.html", context, status=status)
