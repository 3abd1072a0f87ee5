"""Template filters of the console."""

import json
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder

register = template.Library()


@register.filter
def compact_json(value: Any) -> str:
    """An audit event's before / after as compact JSON with sorted keys (what was stored,
    not Python's repr of it). Returned as plain text: the template escapes it, and the
    audit CSV passes it through `core.spreadsheet`'s formula guard."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, cls=DjangoJSONEncoder
    )
