from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from pipeline_project.accounts import api as accounts_api
from pipeline_project.studio import api as studio_api
from pipeline_project.studio import views as studio_views

api_patterns = [
    path("me/", accounts_api.me, name="me"),
    path("tokens/", accounts_api.tokens, name="tokens"),
    path("tokens/<str:token_key>/", accounts_api.token_revoke, name="token-revoke"),
    path("projects/", studio_api.ProjectList.as_view(), name="projects"),
    path("sequences/", studio_api.SequenceList.as_view(), name="sequences"),
    path("shots/", studio_api.ShotList.as_view(), name="shots"),
    path("assets/", studio_api.AssetList.as_view(), name="assets"),
    path("notifications/", studio_api.NotificationList.as_view(), name="notifications"),
    path("notifications/read/", studio_api.notifications_mark_read, name="notifications-read"),
    path("jobs/<uuid:pk>/", studio_api.JobRunDetail.as_view(), name="job"),
    path("transfers/", include("transfers.api_urls")),
    path("colour/", include("colour_routing.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
]

urlpatterns = [
    path("", include("pipeline_project.studio.urls")),
    path("accounts/", include("pipeline_project.accounts.urls")),
    path("transfers/", include("transfers.urls")),
    path("colour/", include("colour_routing.urls")),
    path("api/", include((api_patterns, "api"))),
    # The job-queue dashboard (staff only); also linked from the admin index when Redis is used.
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    path("healthz", studio_views.healthz, name="healthz"),
]

handler404 = "pipeline_project.views.page_not_found"
handler500 = "pipeline_project.views.server_error"

admin.site.site_header = "Studio Pipeline administration"
admin.site.site_title = "Studio Pipeline"
