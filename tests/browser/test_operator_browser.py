"""The operator's day in a real headless Chromium: log in, create a webhook, watch a
delivery arrive on the dashboard, retry a failing one, pause and resume, and find a
training's deliveries. Dispatch is driven as production drives it: a tick, then the
delivery engine over the webhook (tests.deliveries.helpers.deliver).

Screenshots go to SCREENSHOT_DIR when it is set (docs/screenshots for the README),
otherwise to the test's temporary directory.
"""

import os
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from catalog.models import Institute, Training
from deliveries.models import Delivery, DeliveryAttempt
from tests.deliveries.helpers import deliver
from tests.support.browser import CHROMEDRIVER, CHROMIUM, screenshot
from tests.support.partner import status
from webhooks.models import Webhook

pytestmark = [
    pytest.mark.slow,
    # CI installs them (.ci/run), so there a missing browser fails instead of skipping.
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("CI"),
        reason="needs chromium and chromium-driver (apt-get install chromium chromium-driver)",
    ),
]


def earlier_history(now) -> None:
    """Two more partners with 48 hours of attempts, so that the chart has something to show."""
    for name, failing_hours in (("Harbour Jobs", range(30, 34)), ("Northwind Learning", ())):
        webhook = Webhook.objects.create(name=name, url=f"https://{name.split()[0].lower()}.example/")
        for hours_ago in range(47, 0, -1):
            for index in range(1 + (hours_ago * 7) % 5):
                failed = hours_ago in failing_hours
                at = now - timedelta(hours=hours_ago, minutes=index * 7)
                delivery = Delivery.objects.create(
                    webhook=webhook, message_id=f"msg_{webhook.pk}_{hours_ago}_{index}",
                    payload='{"changes":[]}', entry_count=3, state="delivered",
                    delivered_at=at, attempt_count=2 if failed else 1,
                )
                if failed:
                    DeliveryAttempt.objects.create(
                        delivery=delivery, number=1, started_at=at, duration=5.0,
                        status_code=503, error_kind="http_status")
                DeliveryAttempt.objects.create(
                    delivery=delivery, number=2 if failed else 1, started_at=at,
                    duration=0.05 + index * 0.04, accepted=True, status_code=200)
        Webhook.objects.filter(pk=webhook.pk).update(last_success_at=now - timedelta(hours=1))


def test_an_operator_day_in_the_admin(
    live_server, browser, partner, screenshots, settings, transactional_db
):
    from selenium.webdriver.common.by import By

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    settings.WEBHOOK_BUNDLE_DELAY = 0
    settings.WEBHOOK_TIMEOUT = 3
    User.objects.create_superuser("ada", "ada@example.test", "a-long-password-1")
    earlier_history(timezone.now())

    def find(css):
        return browser.find_element(By.CSS_SELECTOR, css)

    def page_text():
        return find("body").text

    def click_and_load(element):
        # Reading the page right after click() can read the old page (or a stale element
        # of it): wait until the old document is gone.
        # (While the new document loads, chromedriver may say "Node with given id does not
        # belong to the document" instead of stale: asked again, it says stale.)
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.ui import WebDriverWait

        old_page = find("html")
        element.click()
        WebDriverWait(browser, 15, ignored_exceptions=(WebDriverException,)).until(
            expected_conditions.staleness_of(old_page)
        )

    # Log in.
    browser.get(live_server.url + "/admin/login/")
    find("#id_username").send_keys("ada")
    find("#id_password").send_keys("a-long-password-1")
    click_and_load(find("input[type=submit]"))
    assert "Delivery health dashboard" in page_text()

    # Create a webhook pointing at the local partner.
    browser.get(live_server.url + "/admin/webhooks/webhook/add/")
    find("#id_name").send_keys("Media Partner")
    find("#id_url").send_keys(partner.url)
    click_and_load(find("input[name=_save]"))
    assert "was added successfully" in page_text()
    webhook = Webhook.objects.get(name="Media Partner")

    # A change is delivered, and the dashboard shows it.
    institute = Institute.objects.create(name="Academy")
    training = Training.objects.create(institute=institute, reference="R1", name="Python")
    deliver(webhook)
    assert len(partner.received) == 1
    browser.get(live_server.url + "/admin/")
    click_and_load(browser.find_element(By.LINK_TEXT, "Delivery health dashboard"))
    row = find(f"#health-table tr[data-webhook='{webhook.pk}']")
    assert "healthy" in row.text and "100% of 1" in row.text
    assert find("#hourly-chart svg rect") is not None

    # The partner fails: the dashboard says so; "Retry now" on the change page sends again.
    partner.then(status(500))
    training.name = "Python for data analysis"
    training.save()
    deliver(webhook)
    browser.refresh()
    row = find(f"#health-table tr[data-webhook='{webhook.pk}']")
    assert "failing since" in row.text and "50% of 2" in row.text
    screenshot(browser, screenshots / "dashboard.png")
    browser.get(live_server.url + f"/admin/webhooks/webhook/{webhook.pk}/change/")
    click_and_load(find("button[value=retry]"))
    assert "Retry queued" in page_text()
    deliver(webhook)
    assert len(partner.received) == 3
    assert partner.received[1].headers["webhook-id"] == partner.received[2].headers["webhook-id"]

    # Pause and resume from the buttons.
    click_and_load(find("button[value=pause]"))
    assert "Paused" in page_text()
    webhook.refresh_from_db()
    assert not webhook.is_active
    click_and_load(find("button[value=resume]"))
    assert "Resumed" in page_text()
    webhook.refresh_from_db()
    assert webhook.is_active

    # The per-webhook health page lists its deliveries.
    browser.get(live_server.url + f"/admin/webhooks/webhook/{webhook.pk}/health/")
    assert find("#recent-deliveries").text.count("msg_") == 2
    screenshot(browser, screenshots / "webhook-health.png")

    # Find the training's deliveries from the dashboard's search.
    browser.get(live_server.url + "/admin/webhooks/webhook/health/")
    find("#fate-q").send_keys(f"training {training.pk}")
    click_and_load(find("#fate-search input[type=submit]"))
    results = find("#result_list").text
    carrying = Delivery.objects.filter(webhook=webhook)
    assert carrying.count() == 2
    for delivery in carrying:
        assert delivery.message_id in results
    assert "Media Partner" in results and "delivered" in results

    # The delivery detail: payload and every attempt.
    failed_then_accepted = carrying.get(attempt_count=2)
    click_and_load(browser.find_element(By.LINK_TEXT, failed_then_accepted.message_id))
    detail = page_text()
    assert f'"id": {training.pk}' in detail
    assert DeliveryAttempt.ErrorKind.HTTP_STATUS.label in detail
    screenshot(browser, screenshots / "delivery-detail.png")
