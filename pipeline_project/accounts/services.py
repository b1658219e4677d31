"""Writes for accounts: roles and API tokens."""

from datetime import timedelta

from django.contrib.auth.models import Group
from django.db import transaction

from pipeline_project.errors import DomainError, NotFound

from .models import ApiToken, User
from .roles import ROLE_NAMES, check_role_names

TOKEN_LIFETIMES = {
    "30": timedelta(days=30),
    "90": timedelta(days=90),
    "365": timedelta(days=365),
    "never": None,
}


def user_set_roles(*, user: User, roles) -> None:
    """Make `roles` exactly the user's studio roles; other groups are left alone."""
    roles = set(roles)
    check_role_names(roles)
    with transaction.atomic():
        current = user.groups.filter(name__in=ROLE_NAMES)
        user.groups.remove(*[g for g in current if g.name not in roles])
        for name in roles:
            group, _ = Group.objects.get_or_create(name=name)
            user.groups.add(group)
    user.forget_roles()


def token_create(*, user: User, name: str, lifetime: str = "365") -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plain token, which is never retrievable again."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the token a name, e.g. the tool or machine that will use it.")
    if len(name) > 100:
        raise DomainError("Token names are at most 100 characters.")
    if lifetime not in TOKEN_LIFETIMES:
        raise DomainError(
            f"Unknown lifetime {lifetime!r}; choose one of {', '.join(TOKEN_LIFETIMES)}."
        )
    if ApiToken.objects.filter(user=user, name=name).exists():
        raise DomainError(f"You already have a token named {name!r}.")
    return ApiToken.objects.create(user, expiry=TOKEN_LIFETIMES[lifetime], name=name)


def token_revoke(*, user: User, token_key: str) -> ApiToken:
    """Revoke (delete) one of the user's own tokens; the next call with it gets 401."""
    token = ApiToken.objects.filter(user=user, token_key=token_key).first()
    if token is None:
        raise NotFound("No such token.")
    token.delete()
    return token
