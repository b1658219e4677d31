"""Dashboard cards contributed by the domain apps: `<app>.dashboard.cards(request)` returns a
list of (template name, context) pairs. Discovered by module name, so studio imports no app."""

from importlib import import_module
from importlib.util import find_spec

from django.apps import apps


def app_cards(request) -> list[tuple[str, dict]]:
    cards = []
    for config in apps.get_app_configs():
        if (
            config.name.startswith("pipeline_project.")
            or find_spec(f"{config.name}.dashboard") is None
        ):
            continue
        cards.extend(import_module(f"{config.name}.dashboard").cards(request))
    return cards
