"""The "Deadlines" console page (`/console/deadlines/`): every review deadline rule, a form
that sets one (per agent, per domain, or both; the most specific applies) and a remove
button per rule. Plain POSTs that redirect back with a message; every change is audited
(`reviews.sla.deadline_set` / `deadline_remove`)."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Role
from accounts.permissions import role_required
from agents.models import Agent
from reviews import sla
from reviews.models import Deadline


class DeadlineForm(forms.Form):
    agent = forms.ModelChoiceField(
        queryset=Agent.objects.order_by("slug"),
        required=False,
        to_field_name="slug",
        empty_label="Any agent",
    )
    domain = forms.CharField(max_length=100, required=False, help_text="Blank: any domain.")
    hours = forms.FloatField(min_value=0.01, max_value=8760)
    working_hours = forms.BooleanField(
        required=False, initial=True, help_text="Count only working hours (SLA settings)."
    )

    def clean(self):
        data = super().clean()
        if not data.get("agent") and not (data.get("domain") or "").strip():
            raise forms.ValidationError("Choose an agent, a domain, or both.")
        return data


@role_required(Role.ADMIN)
@require_http_methods(["GET", "POST"])
def deadlines(request):
    form = DeadlineForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            rule = sla.deadline_set(
                agent_id=data["agent"].pk if data["agent"] else None,
                domain=data["domain"] or "",
                hours=data["hours"],
                working_hours=data["working_hours"],
                actor=request.user,
            )
            messages.success(request, f"Saved the deadline: {rule.hours:g} h.")
            return redirect("console:deadlines")
        status = 400
    rules = Deadline.objects.select_related("agent").order_by("agent__slug", "domain")
    week = f"{settings.SLA_WORKDAY_START}–{settings.SLA_WORKDAY_END}, {settings.SLA_WORKDAYS}"
    context = {
        "form": form,
        "rules": rules,
        "week_text": f"{week} ({settings.SLA_TIME_ZONE})",
    }
    return render(request, "console/deadlines.html", context, status=status)


@role_required(Role.ADMIN)
@require_POST
def deadline_remove(request, pk: int):
    if sla.deadline_remove(deadline_id=pk, actor=request.user):
        messages.success(request, "Removed the deadline.")
    return redirect("console:deadlines")
