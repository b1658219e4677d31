from django.urls import path

from . import views

app_name = "transfers"
urlpatterns = [
    path("", views.transfer_list, name="list"),
    path("approvals/", views.approvals, name="approvals"),
    path("data-team/", views.data_team_queue, name="data-team"),
    path("it/", views.it_queue, name="it"),
    path("new/", views.transfer_new, name="new"),
    path("staging/", views.staging_browser, name="staging"),
    path("<str:reference>/", views.transfer_detail, name="detail"),
    path("<str:reference>/progress/", views.transfer_progress, name="progress"),
    path("<str:reference>/edit/", views.transfer_edit, name="edit"),
    path("<str:reference>/<str:action>/", views.transfer_action, name="action"),
]
