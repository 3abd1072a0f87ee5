"""`{% load markdown %}{{ text|markdown }}`: agent Markdown as sanitised HTML (core.markdown)."""

from django import template
from django.utils.safestring import SafeString, mark_safe

from core.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(value: object) -> SafeString:
    # Safe because render_markdown escapes all raw HTML and nh3 cleans what markdown made.
    return mark_safe(render_markdown(None if value is None else str(value)))  # noqa: S308
