from django.urls import path

from . import api

urlpatterns = [
    path("files/", api.files, name="colour-files"),
    path("files/<int:pk>/", api.FileDetail.as_view(), name="colour-file"),
    path("files/<int:pk>/upload/", api.upload, name="colour-file-upload"),
    path("files/<int:pk>/audit/", api.file_audit, name="colour-file-audit"),
    *[
        path(f"files/<int:pk>/{name}/", view, name=f"colour-file-{name}")
        for name, view in api.action_views.items()
    ],
    path("stats/", api.stats_view, name="colour-stats"),
    path("sites/", api.sites, name="colour-sites"),
    path("sites/<slug:code>/heartbeat/", api.heartbeat, name="colour-heartbeat"),
    path("sites/<slug:code>/rotate-key/", api.rotate_key, name="colour-rotate-key"),
    path("users/", api.users, name="colour-users"),
    path("audit/", api.audit, name="colour-audit"),
    path("transfers/", api.TransferJobList.as_view(), name="colour-transfers"),
]
