from django.urls import path

from . import api

urlpatterns = [
    path("", api.TransferList.as_view(), name="transfers"),
    path("<str:reference>/", api.TransferDetail.as_view(), name="transfer"),
    *[
        path(f"<str:reference>/{name}/", view, name=f"transfer-{name}")
        for name, view in api.action_views.items()
    ],
]
