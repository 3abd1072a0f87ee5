"""manage.py createtoken."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiToken

pytestmark = pytest.mark.django_db


def test_it_creates_a_token_limited_to_the_named_agents(pipeline):
    out = StringIO()
    call_command(
        "createtoken", "pipeline", "--agent", "support-bot", "--agent", "sales-bot", stdout=out
    )
    token = ApiToken.objects.get()
    assert token.key_hash == ApiToken.hash_key(out.getvalue().strip())
    assert token.agent_slugs == ["sales-bot", "support-bot"]


def test_it_creates_a_token_for_every_agent_by_default(pipeline):
    call_command("createtoken", "pipeline", stdout=StringIO())
    assert ApiToken.objects.get().agent_slugs == []


def test_it_refuses_more_agents_than_a_token_may_name(pipeline):
    args = [arg for n in range(101) for arg in ("--agent", f"bot-{n}")]
    with pytest.raises(CommandError, match="100 agents at most per token"):
        call_command("createtoken", "pipeline", *args, stdout=StringIO())
    assert not ApiToken.objects.exists()
