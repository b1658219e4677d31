"""Role checks for HTML views (decorator) and for the API (DRF permission)."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

from .roles import Role, check_role_names


def role_required(*roles: str):
    """View decorator: the user must be logged in and hold one of `roles` (admins always may)."""
    check_role_names(roles)
    allowed = (*roles, Role.ADMIN)

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapper(request, *args, **kwargs):
            if not request.user.has_role(*allowed):
                labels = ", ".join(Role(r).label for r in roles)
                raise PermissionDenied(f"This page needs one of these roles: {labels}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


class HasRole(BasePermission):
    """DRF permission. Use `HasRole.of("data_team", "it")` in `permission_classes`."""

    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, *roles: str) -> type["HasRole"]:
        check_role_names(roles)
        return type(f"HasRole_{'_'.join(roles)}", (cls,), {"roles": (*roles, Role.ADMIN)})

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if user.has_role(*self.roles):
            return True
        labels = ", ".join(Role(r).label for r in self.roles if r != Role.ADMIN)
        self.message = f"This needs one of these roles: {labels}."
        return False
