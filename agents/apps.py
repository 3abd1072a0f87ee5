"""Agents, their review policy, and what they send: interactions and feedback."""

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"
