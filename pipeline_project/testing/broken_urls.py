"""A URLconf for tests of the 500 handlers: the site's URLs plus two views that crash."""

from django.urls import path

from pipeline_project.urls import handler404, handler500, urlpatterns  # noqa: F401


def crash(request):
    raise RuntimeError("boom: a bug in a view")


urlpatterns = [
    path("broken/", crash),
    path("api/broken/", crash),
    *urlpatterns,
]
