from django.apps import AppConfig


class TransfersConfig(AppConfig):
    name = "transfers"
    verbose_name = "Transfers"
    # Sidebar links (collected by studio's context processor): (label, url name, roles or None).
    nav_items = [
        ("My transfers", "transfers:list", None),
        ("Approvals", "transfers:approvals", ("team_lead", "supervisor", "line_producer", "admin")),
        ("Data team queue", "transfers:data-team", ("data_team", "admin")),
        ("IT queue", "transfers:it", ("it", "admin")),
    ]
