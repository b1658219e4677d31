from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from knox.models import AbstractAuthToken, AuthTokenManager

from .roles import ROLE_NAMES, Role, check_role_names


class User(AbstractUser):
    """A studio person. Roles are Django Groups named after `Role` values."""

    display_name = models.CharField(max_length=150, blank=True)
    is_ldap_user = models.BooleanField(
        default=False,
        help_text="Created by directory (LDAP/AD) login; roles follow directory groups at each login.",
    )

    class Meta:
        ordering = ["username"]

    def __str__(self):
        return self.get_display_name()

    def get_display_name(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    def get_role_names(self) -> frozenset[str]:
        """The user's studio roles. A superuser (break-glass account) always holds `admin`."""
        if not self.is_active:
            return frozenset()
        cached = getattr(self, "_role_names", None)
        if cached is None:
            names = set(self.groups.filter(name__in=ROLE_NAMES).values_list("name", flat=True))
            if self.is_superuser:
                names.add(Role.ADMIN)
            cached = self._role_names = frozenset(names)
        return cached

    def get_role_labels(self) -> list[str]:
        return [Role(name).label for name in Role.values if name in self.get_role_names()]

    def has_role(self, *roles: str) -> bool:
        """True when the user holds at least one of `roles`."""
        check_role_names(roles)
        return bool(self.get_role_names() & set(roles))

    def is_admin(self) -> bool:
        return self.has_role(Role.ADMIN)

    def forget_roles(self) -> None:
        self.__dict__.pop("_role_names", None)


class ApiTokenQuerySet(models.QuerySet):
    def active(self):
        now = timezone.now()
        return self.filter(models.Q(expiry__isnull=True) | models.Q(expiry__gt=now))


class ApiToken(AbstractAuthToken):
    """A named API token for a DCC tool or script. Only a SHA-512 digest is stored."""

    name = models.CharField(
        max_length=100, help_text="What uses this token, e.g. 'Houdini ws-042'."
    )
    last_used = models.DateTimeField(null=True, blank=True)

    # knox's manager: `create(user, expiry, name=...)` stores the digest and returns the plain
    # token once, to be shown to its owner and never again.
    objects = AuthTokenManager.from_queryset(ApiTokenQuerySet)()

    class Meta:
        ordering = ["-created"]
        verbose_name = "API token"

    def __str__(self):
        return f"{self.name} ({self.token_key}…) for {self.user.username}"

    def is_expired(self) -> bool:
        return self.expiry is not None and self.expiry <= timezone.now()
