"""The partner portal, under /portal/."""

from django.urls import path

from portal import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in/<str:token>", views.sign_in, name="sign_in"),
    path("link-refused", views.link_refused, name="link_refused"),
    path("sign-out", views.sign_out, name="sign_out"),
    path("signed-out", views.signed_out, name="signed_out"),
    path("docs/", views.docs, name="docs"),
    path("docs/<str:name>", views.docs, name="document"),
    path("docs/screenshots/<slug:name>.png", views.docs_screenshot, name="docs_screenshot"),
    path("webhooks/<int:webhook_id>/", views.webhook_page, name="webhook"),
    path("webhooks/<int:webhook_id>/<slug:action>", views.act, name="act"),
    path("webhooks/<int:webhook_id>/deliveries/<str:message_id>/", views.delivery_page,
         name="delivery"),
    path("webhooks/<int:webhook_id>/deliveries/<str:message_id>/resend", views.resend,
         name="resend"),
]
