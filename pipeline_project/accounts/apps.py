from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "pipeline_project.accounts"
    label = "accounts"
    verbose_name = "Accounts"
