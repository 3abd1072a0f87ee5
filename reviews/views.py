"""Pages of the reviews app. Thin: access checks, a selector or service, a template."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from reviews import selectors


@login_required
def home(request):
    """Role-aware landing page: what is waiting, per agent and reason."""
    return render(request, "reviews/home.html", {"overview": selectors.queue_overview()})
