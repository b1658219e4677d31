from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "pipeline_project.studio"
    label = "studio"
    verbose_name = "Studio"
