from django.urls import path

from . import views

app_name = "studio"
urlpatterns = [
    path("", views.home, name="home"),
    path("projects/", views.project_list, name="projects"),
    path("projects/<slug:code>/", views.project_detail, name="project"),
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications-read"),
    path("notifications/<int:pk>/", views.notification_open, name="notification-open"),
    path("audit/", views.audit_log, name="audit"),
    path("jobs/<uuid:pk>/", views.job_detail, name="job"),
]
