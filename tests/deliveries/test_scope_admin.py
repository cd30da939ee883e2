"""Scopes in the admin: chosen in the webhook's form (institutes by autocomplete), shown in
the list and on the health page; a change made there sends what entered and what left."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from catalog.models import Institute
from tests.deliveries.helpers import collect, keys, next_batch, pass_everything
from webhooks.models import ScopeObjects, Webhook

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture
def institutes(db, fast_delivery) -> list[Institute]:
    made = [Institute.objects.create(name=name) for name in ("Alpha", "Beta", "Gamma")]
    collect()
    return made


def form_data(webhook: Webhook, **changes) -> dict:
    return {"name": webhook.name, "url": webhook.url, "is_active": "on", **changes}


def test_the_add_form_sets_a_scope_and_starts_with_its_institutes(admin_client, institutes):
    alpha, _, gamma = institutes
    response = admin_client.post(
        reverse("admin:webhooks_webhook_add"),
        {"name": "Niche", "url": "https://niche.example/hook", "is_active": "on",
         "send_catalogue": "on", "scope_institute_choice": [alpha.pk, gamma.pk],
         "scope_objects_choice": ScopeObjects.TRAININGS},
    )
    assert response.status_code == 302
    niche = Webhook.objects.get(name="Niche")
    assert (niche.scope_institutes, niche.scope_objects) == ([alpha.pk, gamma.pk], "training")
    assert keys(next_batch(niche)) == [
        ("import", "institute", alpha.pk), ("import", "institute", gamma.pk)
    ]


def test_a_scope_changed_in_the_change_form_sends_what_entered_and_left(
    admin_client, institutes
):
    alpha, beta, _ = institutes
    partner = Webhook.objects.create(
        name="Partner", url="https://partner.example/hook", scope_institutes=[alpha.pk]
    )
    pass_everything()
    page = admin_client.get(reverse("admin:webhooks_webhook_change", args=[partner.pk]))
    content = page.content.decode()
    # The institutes field asks the institutes' autocomplete, and shows the chosen one.
    assert "admin-autocomplete" in content and "Alpha" in content
    response = admin_client.post(
        reverse("admin:webhooks_webhook_change", args=[partner.pk]),
        form_data(partner, scope_institute_choice=[beta.pk], scope_objects_choice="all"),
        follow=True,
    )
    assert response.status_code == 200
    assert "Changed the scope of Partner: queued an import of 1 institute and a destroy " \
        "of 1 institute." in [str(m) for m in get_messages(response.wsgi_request)]
    partner.refresh_from_db()
    assert partner.scope_institutes == [beta.pk]
    assert keys(next_batch(partner)) == [
        ("destroy", "institute", alpha.pk), ("import", "institute", beta.pk)
    ]
    # Saved again unchanged: nothing more is sent.
    admin_client.post(
        reverse("admin:webhooks_webhook_change", args=[partner.pk]),
        form_data(partner, scope_institute_choice=[beta.pk], scope_objects_choice="all"),
    )
    assert next_batch(partner) is None


def test_the_autocomplete_finds_institutes_by_name(admin_client, institutes):
    answer = admin_client.get(
        reverse("admin:autocomplete"),
        {"term": "gam", "app_label": "catalog", "model_name": "training",
         "field_name": "institute"},
    ).json()
    assert [result["text"] for result in answer["results"]] == ["Gamma"]


def test_the_list_and_the_health_page_show_the_scope(admin_client, institutes):
    partner = Webhook.objects.create(
        name="Partner", url="https://partner.example/hook",
        scope_institutes=[institutes[0].pk, institutes[1].pk],
        scope_objects=ScopeObjects.INSTITUTES,
    )
    Webhook.objects.create(name="Everything", url="https://all.example/hook")
    listing = admin_client.get(reverse("admin:webhooks_webhook_changelist")).content.decode()
    assert "2 institutes, institutes only" in listing
    assert "whole catalogue, institutes and trainings" in listing
    health = admin_client.get(
        reverse("admin:webhooks_webhook_health", args=[partner.pk])
    ).content.decode()
    assert "2 institutes, institutes only" in health
