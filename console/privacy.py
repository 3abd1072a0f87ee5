"""The admins' reveal of redacted personal data (agents/redaction.py): on an item's page, a
POST shows the placeholder → original mapping of the item's conversation and writes an audit
event per reveal. Originals are never in the item page itself, only in this POST's answer."""

from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.permissions import role_required
from agents.redacting import conversation_mapping, interaction_conversation
from core.audit import audit_record
from reviews.models import ReviewItem

TEMPLATE = "console/reveal.html"


@role_required(Role.ADMIN)
@require_POST
@never_cache
def reveal(request, item_id: int):
    """Three queries: the item with its interaction, the mapping, the audit event."""
    item = get_object_or_404(ReviewItem.objects.select_related("interaction"), pk=item_id)
    interaction = item.interaction
    if interaction is None:
        raise Http404("No such item.")
    with transaction.atomic():
        values = conversation_mapping(interaction)
        audit_record(
            actor=request.user,
            action="redaction.revealed",
            target_type="review_item",
            target_id=item.pk,
            # Never the originals themselves: the audit log is shown on pages and exported.
            after={
                "conversation": interaction_conversation(interaction),
                "placeholders": len(values),
                "originals_shown": sum(v.original is not None for v in values),
            },
        )
    context = {
        "item": item,
        "values": values,
        "kept": any(v.original is not None for v in values),
    }
    template = f"{TEMPLATE}#mapping" if request.htmx else TEMPLATE
    return render(request, template, context)
