from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.services import token_create


class Command(BaseCommand):
    help = (
        "Creates an API token for USERNAME and prints only the token "
        "(shown once; only its hash is stored)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="a label to recognise the token by")
        parser.add_argument(
            "--agent",
            action="append",
            default=[],
            dest="agents",
            metavar="SLUG",
            help="limit the token to this agent (repeatable); without it: every agent",
        )

    def handle(self, *args, username: str, name: str, agents: list[str], **options) -> None:
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user {username!r}") from None
        try:
            _, secret = token_create(user=user, name=name, agent_slugs=agents)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(secret)
