from django.urls import path

from . import views

app_name = "colour_routing"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("files/", views.file_list, name="files"),
    path("files/<int:pk>/", views.file_detail, name="file"),
    path("files/<int:pk>/<str:action>/", views.file_action, name="file-action"),
    path("transfers/", views.transfers, name="transfers"),
    path("sites/", views.sites, name="sites"),
    path("sites/new/", views.site_create, name="site-create"),
    path("sites/<slug:code>/rotate-key/", views.site_rotate, name="site-rotate"),
    path("audit/", views.audit, name="audit"),
]
