"""The role groups of DESIGN.md: made by a migration and again after every `migrate` /
`flush` (post_migrate), so a flushed database is never left without them. Idempotent."""

from accounts.models import Role


def on_post_migrate(sender, **kwargs) -> None:
    from django.contrib.auth.models import Group

    for name in Role.values:
        Group.objects.get_or_create(name=name)
