from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from hisplatform import views
from hisplatform.api import AskApi, BreakGlassEndApi, BreakGlassOpenApi, BreakGlassReviewApi, ExportApi

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/ask", AskApi.as_view(), name="api-ask"),
    path("api/v1/export", ExportApi.as_view(), name="api-export"),
    path("api/v1/breakglass", BreakGlassOpenApi.as_view(), name="api-breakglass-open"),
    path("api/v1/breakglass/<int:session_id>/end", BreakGlassEndApi.as_view(), name="api-breakglass-end"),
    path(
        "api/v1/breakglass/<int:session_id>/review",
        BreakGlassReviewApi.as_view(),
        name="api-breakglass-review",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
]
