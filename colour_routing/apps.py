from django.apps import AppConfig


class ColourRoutingConfig(AppConfig):
    name = "colour_routing"
    verbose_name = "Colour routing"
    nav_items = [
        ("Dashboard", "colour_routing:dashboard", ("colorist", "engineer", "readonly", "admin")),
        ("File queue", "colour_routing:files", ("colorist", "engineer", "readonly", "admin")),
        ("Site transfers", "colour_routing:transfers", ("engineer", "readonly", "admin")),
        ("Sites", "colour_routing:sites", ("engineer", "readonly", "admin")),
        ("Colour audit", "colour_routing:audit", ("engineer", "readonly", "admin")),
    ]
