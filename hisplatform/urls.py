from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from hisplatform import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("ask/", include("hisplatform.web.ask")),
    path("breakglass/", include("hisplatform.web.breakglass")),
    path("dashboards/", include("hisplatform.web.dashboards")),
    path("account/tokens/", include("hisplatform.web.tokens")),
    path("security/", include("audit.web")),
    path("admin/", admin.site.urls),
    path("api/", include("hisplatform.api_urls")),
]

# Errors raised outside DRF under /api/ still answer with the API's JSON error body; elsewhere, 500.html.
handler500 = "hisplatform.api_errors.server_error"
