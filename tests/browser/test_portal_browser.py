"""The partner portal in a real headless Chromium: staff make a sign-in link in the admin,
the partner's person signs in with it, finds why a delivery failed, fixes the receiver,
resends and sees it accepted. A read-only link shows no buttons and refuses a forged POST;
an expired link is refused; another partner's delivery is 404. Dispatch is driven as
production drives it: a tick, then the delivery engine over the webhook
(tests.deliveries.helpers.deliver).

Screenshots go to SCREENSHOT_DIR when set (docs/screenshots for docs/partners.md).
"""

import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from apikeys.services import api_key_create
from catalog.models import Institute, Training
from deliveries.models import Delivery
from portal.models import PortalLink
from portal.services import portal_link_create
from tests.deliveries.helpers import deliver
from tests.support.browser import CHROMEDRIVER, CHROMIUM, screenshot
from tests.support.partner import Behaviour, status
from webhooks.models import Webhook, WebhookAction

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
        reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture
def portal_setup(live_server, partner, settings, transactional_db):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_BUNDLE_DELAY = 0
    settings.WEBHOOK_TIMEOUT = 3
    settings.API_BASE_URL = live_server.url
    ours = Webhook.objects.create(name="Media Partner shop", url=partner.url_for("/shop"))
    theirs = Webhook.objects.create(name="Another partner", url=partner.url_for("/other"))
    our_key, _ = api_key_create(name="Media Partner", webhook_ids=[ours.pk])
    their_key, _ = api_key_create(name="Another partner", webhook_ids=[theirs.pk])
    return ours, theirs, our_key, their_key


class Page:
    """The few things the tests do with the browser, each waiting for the page it loads."""

    def __init__(self, browser, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.browser.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.browser.find_elements(By.CSS_SELECTOR, css)

    def text(self) -> str:
        return self.find("body").text

    def open(self, path: str) -> None:
        self.browser.get(path if path.startswith("http") else self.base_url + path)

    def click_and_load(self, element) -> None:
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        old_page = self.find("html")
        element.click()
        # While the new document loads, chromedriver may answer a question about the old
        # one with "Node with given id does not belong to the document" instead of a stale
        # element: asked again, it says stale.
        WebDriverWait(self.browser, 15, ignored_exceptions=(WebDriverException,)).until(
            expected_conditions.staleness_of(old_page)
        )

    def link(self, text: str):
        from selenium.webdriver.common.by import By

        return self.browser.find_element(By.PARTIAL_LINK_TEXT, text)


def test_a_partner_finds_a_failed_delivery_fixes_it_and_resends(
    portal_setup, live_server, browser, partner, screenshots
):
    ours, theirs, our_key, _ = portal_setup
    page = Page(browser, live_server.url)
    # The viewer is in Berlin: times read in its zone, UTC on hover.
    browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Europe/Berlin"})

    # A delivery reaches the shop, then the shop's database goes down.
    institute = Institute.objects.create(name="Academy")
    training = Training.objects.create(institute=institute, reference="R1", name="Python")
    deliver(ours)
    partner.then(Behaviour(status=503, body=b'{"error": "shop database unavailable"}'))
    training.name = "Python for data analysis"
    training.save()
    deliver(ours)
    failing = Delivery.objects.get(webhook=ours, state="failing")

    # Staff make an acting sign-in link for the partner's key in the admin.
    User.objects.create_superuser("ada", "ada@example.test", "a-long-password-1")
    page.open("/admin/login/")
    page.find("#id_username").send_keys("ada")
    page.find("#id_password").send_keys("a-long-password-1")
    page.click_and_load(page.find("input[type=submit]"))
    page.open("/admin/portal/portallink/add/")
    from selenium.webdriver.support.ui import Select

    Select(page.find("#id_api_key")).select_by_visible_text(str(our_key))
    page.find("#id_can_act").click()
    page.click_and_load(page.find("input[name=_save]"))
    link = page.find(".new-portal-link").text
    assert link.startswith(live_server.url + "/portal/sign-in/pl_")
    browser.delete_all_cookies()  # the partner's person, in their own browser

    # The partner signs in: the token leaves the address bar.
    page.open(link)
    assert browser.current_url == live_server.url + "/portal/"
    assert "sign-in" not in browser.current_url
    assert browser.title == "Your webhooks · Springhook partner portal"
    row = page.find(f"#webhooks tr[data-webhook='{ours.pk}']")
    assert "failing" in row.text and "Another partner" not in page.text()
    screenshot(browser, screenshots / "portal-webhooks.png")

    # Their webhook, then the failing delivery with the shop's own answer.
    page.click_and_load(page.link("Media Partner shop"))
    assert "Media Partner shop" in browser.title
    assert failing.message_id in page.find("#deliveries").text
    screenshot(browser, screenshots / "portal-webhook.png")
    # The partner narrows the scope to the one institute it sells (a multi-select).
    Select(page.find("#scope-institutes")).select_by_visible_text(f"Academy ({institute.pk})")
    page.click_and_load(page.find("button[value=change-scope]"))
    assert "Scope set to 1 institute (all): queued an import of 0" in page.text()
    assert page.find("#scope").text == "1 institute: Academy; institutes and trainings"
    page.click_and_load(page.link(failing.message_id))
    attempts = page.find("#attempts").text
    assert "HTTP 503" in attempts and "shop database unavailable" in attempts
    assert " ms" in attempts
    moment = page.find("#attempts time")
    assert "UTC" in moment.get_attribute("title") and "UTC" not in moment.text
    assert "GMT+1" in moment.text or "CET" in moment.text
    body = page.find("pre.body").text
    assert '"action": "update"' in body and f'"id": {training.pk}' in body
    screenshot(browser, screenshots / "portal-delivery-failing.png")
    # The same page on a phone.
    browser.set_window_size(390, 844)
    browser.save_screenshot(str(screenshots / "portal-delivery-phone.png"))
    browser.set_window_size(1400, 1000)

    # The shop is fixed; the partner resends from the page and sees it accepted.
    partner.then(status(200))
    page.click_and_load(page.find("button[value=resend]"))
    assert "Resend queued" in page.text()
    deliver(ours)
    browser.refresh()
    assert "accepted" in page.find(".facts").text
    assert "accepted (HTTP 200)" in page.find("#attempts").text
    assert len(partner.received) == 3
    assert partner.received[1].headers["webhook-id"] == partner.received[2].headers["webhook-id"]
    screenshot(browser, screenshots / "portal-delivery-accepted.png")

    # Staff see who did it on the webhook's admin page.
    action = WebhookAction.objects.get(webhook=ours, action="resend")
    assert action.api_key_id == our_key.pk and action.channel == "portal"

    # The partner guide, rendered in the portal; then sign out.
    page.click_and_load(page.link("Partner guide"))
    assert "Verifying a request" in page.text() or "verify" in page.text().lower()
    page.click_and_load(page.find("header button"))
    assert "You have signed out" in page.text()
    page.open(f"/portal/webhooks/{ours.pk}/")
    assert "not signed in" in page.text()

    # Staff read on the webhook's admin page who did what.
    page.open("/admin/login/")
    page.find("#id_username").send_keys("ada")
    page.find("#id_password").send_keys("a-long-password-1")
    page.click_and_load(page.find("input[type=submit]"))
    page.open(f"/admin/webhooks/webhook/{ours.pk}/change/")
    actions = page.find("#webhook-actions").text
    assert str(our_key) in actions and "partner portal" in actions and "resend" in actions
    screenshot(browser, screenshots / "admin-webhook-actions.png")


def test_a_read_only_link_shows_no_buttons_and_refuses_a_forged_post(
    portal_setup, live_server, browser, partner
):
    ours, theirs, our_key, _ = portal_setup
    page = Page(browser, live_server.url)
    _, token = portal_link_create(api_key_id=our_key.pk, can_act=False, created_by="test")
    page.open(f"/portal/sign-in/{token}")
    page.click_and_load(page.link("Media Partner shop"))
    assert "read-only" in page.find("header").text
    assert [button.text for button in page.all("main button")] == ["Filter"]

    # A POST made by hand, with the session's own CSRF token, is refused all the same.
    browser.execute_script(
        """
        const form = document.createElement("form");
        form.method = "post";
        form.action = arguments[0];
        const token = document.createElement("input");
        token.name = "csrfmiddlewaretoken";
        token.value = document.cookie.match(/csrftoken=([^;]+)/)[1];
        form.appendChild(token);
        document.body.appendChild(form);
        form.submit();
        """,
        f"/portal/webhooks/{ours.pk}/pause",
    )
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 15).until(lambda driver: "Read-only" in driver.title)
    assert "read-only link" in page.text()
    ours.refresh_from_db()
    assert ours.is_active and not WebhookAction.objects.exists()


def test_an_expired_link_is_refused_and_another_partners_delivery_is_404(
    portal_setup, live_server, browser, partner, screenshots
):
    ours, theirs, our_key, _ = portal_setup
    page = Page(browser, live_server.url)
    link, token = portal_link_create(api_key_id=our_key.pk, can_act=True, created_by="test")
    PortalLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    page.open(f"/portal/sign-in/{token}")
    assert "has expired" in page.text() and "/portal-links" in page.text()
    assert token not in browser.current_url
    screenshot(browser, screenshots / "portal-link-expired.png")
    page.open("/portal/")
    assert "not signed in" in page.text()

    partner.then(status(500))
    Institute.objects.create(name="Theirs only")
    deliver(theirs)
    their_delivery = Delivery.objects.get(webhook=theirs)
    _, token = portal_link_create(api_key_id=our_key.pk, can_act=True, created_by="test")
    page.open(f"/portal/sign-in/{token}")
    page.open(f"/portal/webhooks/{theirs.pk}/deliveries/{their_delivery.message_id}/")
    assert browser.title == "Not found · Springhook partner portal"
    assert "Another partner" not in page.text() and their_delivery.message_id not in page.text()
