"""The partner portal (portal/): sign-in links, what a partner sees, what an acting link
does, and that nothing of another partner's ever shows. A real local partner answers."""

import logging
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from apikeys.services import api_key_create
from catalog.models import Institute
from deliveries.models import Delivery
from portal.models import PortalLink
from portal.services import (
    PortalLinkError,
    PortalLinkRefused,
    portal_link_create,
    portal_link_redeem,
    portal_token_hash,
)
from tests.deliveries.helpers import collect, deliver, record
from tests.support.partner import Behaviour, status
from webhooks.models import Webhook, WebhookAction
from webhooks.secrets import secret_fingerprint

pytestmark = pytest.mark.filterwarnings("ignore:No directory at:UserWarning")


@pytest.fixture
def ours(db, fast_delivery, partner) -> Webhook:
    return Webhook.objects.create(name="Ours", url=partner.url_for("/ours"))


@pytest.fixture
def theirs(db, fast_delivery, partner) -> Webhook:
    return Webhook.objects.create(name="Theirs", url=partner.url_for("/theirs"))


@pytest.fixture
def our_key(ours):
    api_key, raw_key = api_key_create(name="Our partner", webhook_ids=[ours.pk])
    api_key.raw_key = raw_key
    return api_key


@pytest.fixture
def their_key(theirs):
    api_key, _ = api_key_create(name="The other partner", webhook_ids=[theirs.pk])
    return api_key


def signed_in(api_key, *, can_act: bool) -> Client:
    client = Client(enforce_csrf_checks=True)
    _, token = portal_link_create(api_key_id=api_key.pk, can_act=can_act, created_by="test")
    response = client.get(f"/portal/sign-in/{token}")
    assert response.status_code == 302 and response["Location"] == "/portal/"
    return client


def csrf_post(client: Client, page: str, action: str, **data) -> object:
    """POST the way a browser submits the page's form: with the page's CSRF token."""
    html = client.get(page).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    return client.post(action, {"csrfmiddlewaretoken": token, **data})


def failing_delivery(webhook: Webhook, partner) -> Delivery:
    partner.then(Behaviour(status=503, body=b'{"error": "database is down"}'))
    record("update", "training", 7, 1)
    deliver(webhook)
    return Delivery.objects.get(webhook=webhook)


# --- Sign-in links ------------------------------------------------------------------------


def test_a_link_works_once_and_only_its_hash_is_stored(our_key):
    link, token = portal_link_create(api_key_id=our_key.pk, can_act=False, created_by="test")
    assert token.startswith("pl_") and len(token) > 40
    assert link.token_hash == portal_token_hash(token) and token not in link.token_hash
    assert link.expires_at - timezone.now() == pytest.approx(timedelta(minutes=30),
                                                             abs=timedelta(seconds=5))
    grant = portal_link_redeem(raw_token=token)
    assert grant.api_key_id == our_key.pk and grant.can_act is False
    with pytest.raises(PortalLinkRefused) as refused:
        portal_link_redeem(raw_token=token)
    assert refused.value.reason == "used"


@pytest.mark.parametrize("token", ["pl_forged", "x" * 500, ""])
def test_a_forged_link_is_refused(db, token):
    with pytest.raises(PortalLinkRefused) as refused:
        portal_link_redeem(raw_token=token)
    assert refused.value.reason == "unknown"


def test_an_expired_link_and_a_revoked_key_are_refused(our_key, settings):
    link, token = portal_link_create(api_key_id=our_key.pk, can_act=True, created_by="test")
    PortalLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(PortalLinkRefused) as refused:
        portal_link_redeem(raw_token=token)
    assert refused.value.reason == "expired"
    _, token = portal_link_create(api_key_id=our_key.pk, can_act=True, created_by="test")
    type(our_key).objects.filter(pk=our_key.pk).update(is_active=False)
    with pytest.raises(PortalLinkRefused) as refused:
        portal_link_redeem(raw_token=token)
    assert refused.value.reason == "revoked"


def test_no_link_for_a_key_without_webhooks(db):
    api_key, _ = api_key_create(name="Catalogue reader")
    with pytest.raises(PortalLinkError, match="belongs to no webhook"):
        portal_link_create(api_key_id=api_key.pk, can_act=False, created_by="test")


def test_signing_in_redirects_the_token_away_and_a_refused_link_says_what_to_do(
    our_key, caplog
):
    caplog.set_level(logging.DEBUG)
    client = Client()
    _, token = portal_link_create(api_key_id=our_key.pk, can_act=False, created_by="test")
    assert client.head(f"/portal/sign-in/{token}").status_code == 204  # a link checker
    assert Client(enforce_csrf_checks=True).post(f"/portal/sign-in/{token}").status_code == 204
    response = client.get(f"/portal/sign-in/{token}")
    assert response.status_code == 302 and token not in response["Location"]
    assert client.get("/portal/").status_code == 200

    again = Client().get(f"/portal/sign-in/{token}", follow=True)
    assert again.redirect_chain[-1][0] == "/portal/link-refused?reason=used"
    assert again.status_code == 403
    text = again.content.decode()
    assert "was used already" in text and "POST /portal-links" not in text
    assert "/portal-links" in text and "Ask your contact" in text
    forged = Client().get("/portal/sign-in/pl_forged", follow=True)
    assert "not valid" in forged.content.decode()
    # Links and sessions are never logged in full.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in logged and token[:20] not in logged
    assert client.session.session_key not in logged


def test_a_session_ends_at_sign_out_and_after_the_working_day(our_key, settings):
    client = signed_in(our_key, can_act=False)
    assert csrf_post(client, "/portal/", "/portal/sign-out").status_code == 302
    response = client.get("/portal/")
    assert response.status_code == 401 and "not signed in" in response.content.decode()

    settings.PORTAL_SESSION_MAX_AGE = 60
    client = signed_in(our_key, can_act=False)
    session = client.session
    session["portal"]["until"] = timezone.now().timestamp() - 1
    session.save()
    assert client.get("/portal/").status_code == 401


def test_every_portal_page_has_a_strict_content_security_policy(our_key):
    client = signed_in(our_key, can_act=False)
    for path in ("/portal/", "/portal/docs/", "/portal/link-refused", "/portal/webhooks/0/"):
        response = client.get(path)
        policy = response["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert "no-store" in response["Cache-Control"]


# --- Seeing -------------------------------------------------------------------------------


def test_a_partner_sees_its_failing_delivery_and_the_answer_but_no_secret(
    our_key, ours, theirs, their_key, partner
):
    delivery = failing_delivery(ours, partner)
    client = signed_in(our_key, can_act=False)

    home = client.get("/portal/").content.decode()
    assert "Ours" in home and "failing" in home and "Theirs" not in home
    assert re.search(r"a delivery</a>, failing for \d+ s", home)
    page = client.get(f"/portal/webhooks/{ours.pk}/").content.decode()
    assert delivery.message_id in page and secret_fingerprint(ours.secret) in page
    assert ours.secret not in page and "whsec_" not in page
    assert "<title>Ours · Springhook partner portal</title>" in page
    detail = client.get(f"/portal/webhooks/{ours.pk}/deliveries/{delivery.message_id}/")
    text = detail.content.decode()
    assert "HTTP 503" in text and "database is down" in text
    assert '&quot;action&quot;: &quot;update&quot;' in text  # the body, indented
    assert "ms</td>" in text
    assert re.search(r'<time datetime="[^"]+Z" title="[^"]+ UTC">', text)
    # A read-only link shows no button.
    assert "<button" not in text.replace('<button type="submit" class="link">Sign out', "")


def test_another_partners_pages_are_404(our_key, ours, theirs, their_key, partner):
    delivery = failing_delivery(theirs, partner)
    client = signed_in(our_key, can_act=True)
    for path in (
        f"/portal/webhooks/{theirs.pk}/",
        f"/portal/webhooks/{theirs.pk}/deliveries/{delivery.message_id}/",
        f"/portal/webhooks/{ours.pk}/deliveries/{delivery.message_id}/",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Theirs" not in response.content.decode()
    response = csrf_post(client, f"/portal/webhooks/{ours.pk}/",
                         f"/portal/webhooks/{theirs.pk}/pause")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.is_active


def test_deliveries_filter_by_state_and_day_and_come_a_page_at_a_time(our_key, ours):
    now = timezone.now()
    for number in range(30):
        Delivery.objects.create(
            webhook=ours, message_id=f"msg_page_{number:02d}", payload='{"changes":[]}',
            entry_count=1, state="delivered", delivered_at=now,
        )
    client = signed_in(our_key, can_act=False)
    def rows(query: str = "") -> str:
        page = client.get(f"/portal/webhooks/{ours.pk}/{query}").content.decode()
        return " ".join(re.findall(r'data-message="([^"]+)"', page)) + page[-600:]

    first = rows()
    assert "msg_page_29" in first and "msg_page_04" not in first and "Page 1 of 2" in first
    second = rows("?page=2")
    assert "msg_page_04" in second and "msg_page_29" not in second
    assert "msg_page_" not in rows("?state=failing")
    tomorrow = (now + timedelta(days=1)).strftime("%Y-%m-%d")
    assert "msg_page_" not in rows(f"?from={tomorrow}")
    assert "msg_page_00" in rows(f"?to={tomorrow}&page=2")
    bad = client.get(f"/portal/webhooks/{ours.pk}/?from=yesterday&state=lost&page=x")
    assert bad.status_code == 200
    assert "must be a date" in bad.content.decode() and "msg_page_29" in bad.content.decode()


# --- Acting -------------------------------------------------------------------------------


def test_resend_after_fixing_the_receiver_is_accepted_and_recorded(our_key, ours, partner):
    delivery = failing_delivery(ours, partner)
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/deliveries/{delivery.message_id}/"
    partner.then(status(200))
    response = csrf_post(client, page, page + "resend")
    assert response.status_code == 302
    assert "Resend queued" in client.get(page).content.decode()
    delivery.refresh_from_db()
    assert delivery.next_attempt_at <= timezone.now()
    deliver(ours)
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    action = WebhookAction.objects.get(webhook=ours)
    assert action.channel == "portal" and action.action == "resend"
    assert action.api_key_id == our_key.pk and "Our partner" in action.actor


def test_a_read_only_link_refuses_a_forged_post_and_every_form_needs_csrf(
    our_key, ours, partner
):
    delivery = failing_delivery(ours, partner)
    reader = signed_in(our_key, can_act=False)
    page = f"/portal/webhooks/{ours.pk}/"
    response = csrf_post(reader, page, page + "pause")
    assert response.status_code == 403 and "read-only" in response.content.decode()
    response = csrf_post(reader, page, f"{page}deliveries/{delivery.message_id}/resend")
    assert response.status_code == 403
    actor = signed_in(our_key, can_act=True)
    assert actor.post(page + "pause").status_code == 403  # no CSRF token
    assert actor.get(page + "pause").status_code == 405
    ours.refresh_from_db()
    assert ours.is_active and not WebhookAction.objects.exists()


def test_pause_resume_test_event_and_resync_say_what_they_did(our_key, ours, settings):
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/"
    csrf_post(client, page, page + "pause")
    ours.refresh_from_db()
    assert not ours.is_active and "Our partner" in ours.paused_reason
    assert "Paused: nothing is sent" in client.get(page).content.decode()
    csrf_post(client, page, page + "test")
    assert "resume it first" in client.get(page).content.decode()
    csrf_post(client, page, page + "resume")
    csrf_post(client, page, page + "test")
    assert "Test event msg_" in client.get(page).content.decode()
    assert Delivery.objects.filter(webhook=ours, is_test=True).count() == 1
    csrf_post(client, page, page + "resync")
    csrf_post(client, page, page + "resync")
    text = client.get(page).content.decode()
    assert "ask again in" in text
    assert list(WebhookAction.objects.filter(webhook=ours).order_by("at", "id")
                .values_list("action", flat=True)) == ["pause", "resume", "test", "resync"]


def test_rotating_the_secret_shows_it_once_and_then_only_its_fingerprint(our_key, ours):
    old = ours.secret
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/"
    response = csrf_post(client, page, page + "rotate-secret")
    ours.refresh_from_db()
    assert ours.secret != old and ours.previous_secret == old
    text = response.content.decode()
    assert ours.secret in text and "24 hours" in text
    assert "no-store" in response["Cache-Control"]
    later = client.get(page).content.decode()
    assert ours.secret not in later and secret_fingerprint(ours.secret) in later
    assert secret_fingerprint(old) in later  # still signing for the overlap
    action = WebhookAction.objects.get(webhook=ours)
    assert ours.secret not in action.outcome and old not in action.outcome


def test_a_url_change_takes_effect_only_once_the_new_url_accepted_a_test(
    our_key, ours, partner, settings
):
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/"
    old_url = ours.url
    partner.then(status(500))
    csrf_post(client, page, page + "change-url", url=partner.url_for("/new"))
    ours.refresh_from_db()
    assert ours.url == old_url
    assert "did not accept the test event (HTTP 500)" in client.get(page).content.decode()
    test = partner.received[-1]
    assert test.path == "/new" and test.json == {"changes": []}
    assert test.headers["webhook-signature"].startswith("v1,")

    # That test POST counts as a test event: asking again at once is refused, unsent.
    csrf_post(client, page, page + "change-url", url=partner.url_for("/new"))
    assert "ask again in" in client.get(page).content.decode()
    assert len(partner.received) == 1
    settings.WEBHOOK_TEST_INTERVAL = 0

    csrf_post(client, page, page + "change-url", url="ftp://example.test/")
    ours.refresh_from_db()
    assert ours.url == old_url

    partner.then(status(204))
    csrf_post(client, page, page + "change-url", url=partner.url_for("/new"))
    ours.refresh_from_db()
    assert ours.url == partner.url_for("/new")
    assert "Changed the URL" in client.get(page).content.decode()
    assert WebhookAction.objects.get(webhook=ours, action="change_url")


def test_a_private_address_is_refused_by_the_address_guard(our_key, ours, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/"
    csrf_post(client, page, page + "change-url", url="http://10.0.0.5/hook")
    ours.refresh_from_db()
    assert "10.0.0.5" not in ours.url
    assert "public addresses" in client.get(page).content.decode()


# --- Links made by staff and by the partner's code ------------------------------------------


def test_the_partner_api_makes_a_link(our_key, client):
    response = client.post("/portal-links", data='{"can_act": true}',
                           content_type="application/json",
                           headers={"X-API-Key": our_key.raw_key})
    assert response.status_code == 201
    body = response.json()
    assert body["can_act"] is True and "/portal/sign-in/pl_" in body["url"]
    token = body["url"].rsplit("/", 1)[1]
    assert portal_link_redeem(raw_token=token).can_act
    bad = client.post("/portal-links", data='{"can_act": "yes"}',
                      content_type="application/json",
                      headers={"X-API-Key": our_key.raw_key})
    assert bad.status_code == 400 and "can_act" in bad.json()["message"]
    assert client.post("/portal-links").status_code == 401


def test_the_command_prints_a_link(our_key):
    out = StringIO()
    call_command("portal_link", "Our partner", "--act", stdout=out)
    lines = out.getvalue().strip().splitlines()
    assert lines[0].startswith("Acting sign-in link for Our partner")
    token = lines[-1].rsplit("/", 1)[1]
    assert portal_link_redeem(raw_token=token).can_act


def test_staff_make_a_link_in_the_admin_and_see_partner_actions_on_the_webhook(
    our_key, ours, client
):
    User.objects.create_superuser("ada", "ada@example.test", "a-long-password-1")
    client.login(username="ada", password="a-long-password-1")
    response = client.post("/admin/portal/portallink/add/",
                           {"api_key": our_key.pk, "can_act": "on"})
    assert response.status_code == 200
    url = re.search(r'class="new-portal-link">([^<]+)<', response.content.decode()).group(1)
    partner_client = Client(enforce_csrf_checks=True)
    assert partner_client.get(url.replace("https://api.example.test", "")).status_code == 302
    page = f"/portal/webhooks/{ours.pk}/"
    csrf_post(partner_client, page, page + "pause")
    change = client.get(f"/admin/webhooks/webhook/{ours.pk}/change/").content.decode()
    assert "Our partner" in change and "partner portal" in change and "pause" in change


def test_the_partner_guide_and_the_contract_are_rendered_with_their_screenshots(our_key):
    client = signed_in(our_key, can_act=False)
    guide = client.get("/portal/docs/").content.decode()
    assert '<h2 id="the-partner-portal">The partner portal</h2>' in guide
    assert 'id="receive-verify-answer-fast"' in guide  # the webhook page links there
    assert 'href="contract.md"' in guide
    images = re.findall(r'<img alt="[^"]*" src="(screenshots/[^"]+\.png)"', guide)
    assert images
    for image in images:
        response = client.get("/portal/docs/" + image)
        assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert "Delivery contract" in client.get("/portal/docs/contract.md").content.decode()
    assert client.get("/portal/docs/operations.md").status_code == 404
    assert client.get("/portal/docs/screenshots/nope.png").status_code == 404
    assert Client().get("/portal/docs/").status_code == 401


def test_revoking_the_key_ends_its_portal_sessions(our_key):
    client = signed_in(our_key, can_act=True)
    assert client.get("/portal/").status_code == 200
    type(our_key).objects.filter(pk=our_key.pk).update(is_active=False)
    assert client.get("/portal/").status_code == 401


def test_staff_actions_are_recorded_beside_the_partners(ours, client):
    ada = User.objects.create_superuser("ada", "ada@example.test", "a-long-password-1")
    client.login(username="ada", password="a-long-password-1")
    response = client.post(f"/admin/webhooks/webhook/{ours.pk}/operate/pause/")
    assert response.status_code == 302
    action = WebhookAction.objects.get(webhook=ours)
    assert (action.channel, action.action, action.staff_user_id, action.actor) == (
        "admin", "pause", ada.pk, "ada")
    listing = client.get("/admin/webhooks/webhookaction/?channel__exact=admin").content.decode()
    assert "Paused: changes keep collecting" in listing
    assert client.get("/admin/webhooks/webhookaction/add/").status_code == 403


def test_the_session_cookie_a_link_sets_is_secure_httponly_and_same_site(our_key, settings):
    settings.SESSION_COOKIE_SECURE = True  # as in production
    _, token = portal_link_create(api_key_id=our_key.pk, can_act=False, created_by="test")
    response = Client().get(f"/portal/sign-in/{token}", secure=True)
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert int(cookie["max-age"]) == settings.PORTAL_SESSION_MAX_AGE


def test_a_delivery_page_shows_the_latest_attempts_only(our_key, ours):
    delivery = Delivery.objects.create(webhook=ours, message_id="msg_many", entry_count=0,
                                       payload='{"changes":[]}', state="failing",
                                       attempt_count=60)
    now = timezone.now()
    for number in range(1, 61):
        delivery.attempts.create(number=number, started_at=now, duration=0.01,
                                 status_code=500, error_kind="http_status",
                                 response_body=f"answer {number:02d}")
    client = signed_in(our_key, can_act=False)
    page = client.get(f"/portal/webhooks/{ours.pk}/deliveries/msg_many/").content.decode()
    assert "answer 60" in page and "answer 11" in page and "answer 10" not in page
    assert "10 earlier ones not shown" in page


# --- Scopes ---------------------------------------------------------------------------------


@pytest.fixture
def institutes(ours) -> list[Institute]:
    made = [Institute.objects.create(name=name) for name in ("Alpha", "Beta", "Gamma")]
    collect()
    return made


def test_the_scope_shows_in_words_and_an_acting_link_changes_it(our_key, ours, institutes):
    alpha, beta, gamma = institutes
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/"
    home = client.get("/portal/").content.decode()
    assert "the whole catalogue; institutes and trainings" in home
    form = client.get(page).content.decode()
    assert f'<option value="{gamma.pk}">Gamma ({gamma.pk})</option>' in form
    response = csrf_post(client, page, page + "change-scope",
                         institutes=[alpha.pk, beta.pk], objects="training")
    assert response.status_code == 302
    ours.refresh_from_db()
    assert (ours.scope_institutes, ours.scope_objects) == ([alpha.pk, beta.pk], "training")
    text = client.get(page).content.decode()
    # The kinds changed: the whole new scope is imported; Gamma left.
    assert ("Scope set to 2 institutes (training): queued an import of 2 and a destroy of 1 "
            "institutes") in text
    assert "2 institutes: Alpha, Beta; trainings only" in text
    assert f'<option value="{alpha.pk}" selected>' in text
    assert "2 institutes: Alpha, Beta; trainings only" in client.get("/portal/").content.decode()
    action = WebhookAction.objects.get(webhook=ours)
    assert (action.channel, action.action, action.api_key_id) == (
        "portal", "change_scope", our_key.pk)
    assert action.outcome.startswith("Scope set to 2 institutes")


def test_many_institutes_are_typed_as_ids_and_unknown_ones_are_named(
    our_key, ours, institutes, monkeypatch
):
    monkeypatch.setattr("portal.views.SCOPE_CHOICES_LIMIT", 2)
    alpha, beta, _ = institutes
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/"
    assert 'name="institute_ids"' in client.get(page).content.decode()
    csrf_post(client, page, page + "change-scope", institute_ids="12, abc", objects="all")
    assert ("The scope was not changed: institutes must be ids (whole numbers), "
            "comma-separated; not “abc”") in client.get(page).content.decode()
    csrf_post(client, page, page + "change-scope",
              institute_ids=f"{alpha.pk}, 999998,999999", objects="all")
    assert ("No institute has the ids 999998, 999999: the scope was not changed."
            in client.get(page).content.decode())
    ours.refresh_from_db()
    assert ours.scope_institutes is None and not WebhookAction.objects.exists()
    csrf_post(client, page, page + "change-scope",
              institute_ids=f" {beta.pk} ;{alpha.pk}", objects="all")
    ours.refresh_from_db()
    assert ours.scope_institutes == [alpha.pk, beta.pk]
    assert f'value="{alpha.pk}, {beta.pk}"' in client.get(page).content.decode()


def test_a_scope_change_that_imports_is_limited_as_a_resync(our_key, ours, institutes):
    alpha, _, _ = institutes
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/"
    csrf_post(client, page, page + "resync")
    csrf_post(client, page, page + "change-scope", institutes=[alpha.pk], objects="institute")
    text = client.get(page).content.decode()
    assert "ask again in" in text and "widened scope" in text
    ours.refresh_from_db()
    assert (ours.scope_institutes, ours.scope_objects) == (None, "all")
    # Narrowing imports nothing: it is not limited.
    csrf_post(client, page, page + "change-scope", institutes=[alpha.pk], objects="all")
    text = client.get(page).content.decode()
    assert "queued an import of 0 and a destroy of 2 institutes" in text
    assert list(WebhookAction.objects.filter(webhook=ours).order_by("at", "id")
                .values_list("action", flat=True)) == ["resync", "change_scope"]


def test_a_read_only_link_shows_the_scope_but_no_form_and_refuses_a_change(
    our_key, ours, institutes
):
    reader = signed_in(our_key, can_act=False)
    page = f"/portal/webhooks/{ours.pk}/"
    text = reader.get(page).content.decode()
    assert "the whole catalogue" in text and "change-scope" not in text
    response = csrf_post(reader, page, page + "change-scope",
                         institutes=[institutes[0].pk], objects="all")
    assert response.status_code == 403
    ours.refresh_from_db()
    assert ours.scope_institutes is None and not WebhookAction.objects.exists()


def test_another_partners_scope_is_404(our_key, ours, theirs, institutes):
    client = signed_in(our_key, can_act=True)
    page = f"/portal/webhooks/{ours.pk}/"
    response = csrf_post(client, page, f"/portal/webhooks/{theirs.pk}/change-scope",
                         institutes=[institutes[0].pk], objects="all")
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.scope_institutes is None and not WebhookAction.objects.exists()
