"""`{% load deadlines %}`: review due times as people read them.

`{% due item.due_at %}` renders a `<time>` with the due time in the SLA time zone (the
viewer's own is not known) and how far away it is ("in 2 h", "3 h overdue"); overdue ones
carry the `overdue` class. Nothing for an item without a deadline.
"""

from datetime import datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html

from reviews.deadlines import relative
from reviews.deadlines import sla_local_text as local_text

register = template.Library()


@register.simple_tag
def due(moment: datetime | None, now: datetime | None = None):
    if moment is None:
        return ""
    delta = moment - (now or timezone.now())
    overdue = delta.total_seconds() < 0
    return format_html(
        '<time class="due{}" datetime="{}">{} <span class="due-rel">({})</span></time>',
        " overdue" if overdue else "",
        moment.isoformat(),
        local_text(moment),
        relative(delta),
    )


@register.filter
def is_overdue(moment: datetime | None) -> bool:
    return moment is not None and moment <= timezone.now()
