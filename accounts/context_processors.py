from accounts.permissions import user_roles


def roles(request):
    """`roles` in every template: the set of the user's role names (lazy: no query unless used)."""
    user = getattr(request, "user", None)

    class _Lazy:
        def __contains__(self, role: str) -> bool:
            return role in user_roles(user)

        def __iter__(self):
            return iter(sorted(user_roles(user)))

    return {"roles": _Lazy()}
