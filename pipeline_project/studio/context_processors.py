from django.apps import apps
from django.conf import settings


def site(request):
    context = {"SITE_NAME": settings.SITE_NAME, "JOBS_INLINE": settings.JOBS_INLINE}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        context["unread_notifications"] = user.notifications.unread().count()
        context["user_roles"] = user.get_role_names()
        context["app_nav"] = app_nav(user)
    return context


def app_nav(user):
    """Sidebar sections of the domain apps: each AppConfig may list `nav_items` as
    (label, url name, roles or None). Studio reads them without importing any domain app."""
    sections = []
    for config in apps.get_app_configs():
        items = [
            (label, url_name)
            for label, url_name, roles in getattr(config, "nav_items", ())
            if roles is None or user.has_role(*roles)
        ]
        if items:
            sections.append((config.verbose_name, items))
    return sections
