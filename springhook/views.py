"""Endpoints of the project itself: /healthz for load balancers and orchestrators,
/metrics for Prometheus, /openapi.json for partners. None needs a login (/metrics needs
METRICS_TOKEN when that is set), and none shows a secret or a URL."""

import hmac
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from deliveries.selectors import (
    attempt_durations_histogram,
    deliveries_accepted_since,
    deliveries_open_by_state,
    dispatcher_last_tick,
    webhooks_health,
)
from springhook.openapi import openapi_document

# Upper bounds (seconds) of the attempt duration histogram, up to the 15 s default timeout.
DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0]
# The histogram covers attempts started this long ago at most (a sliding window).
DURATION_WINDOW = timedelta(hours=1)


def _tick_age(last_tick: datetime, now: datetime) -> float:
    # Clocks of the machines that write the heartbeat and read it may differ a little: a
    # tick "in the future" is a tick just now.
    return max(0.0, (now - last_tick).total_seconds())


def _database_check() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure to talk to the database is "down"
        return f"error: {type(error).__name__}"
    return "ok"


def _broker_check() -> str:
    if not settings.CELERY_BROKER_URL:
        return "not configured"
    from kombu import Connection

    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as broker:
            broker.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:
        return f"error: {type(error).__name__}"
    return "ok"


@never_cache
@require_GET
def healthz(request):
    """200 when the database answers, the broker (if configured) answers and the
    dispatcher ticked within HEALTHZ_MAX_TICK_AGE seconds; 503 otherwise."""
    database = _database_check()
    broker = _broker_check()
    last_tick = dispatcher_last_tick() if database == "ok" else None
    tick_age = _tick_age(last_tick, timezone.now()) if last_tick else None
    dispatcher_ok = tick_age is not None and tick_age <= settings.HEALTHZ_MAX_TICK_AGE
    healthy = database == "ok" and broker in ("ok", "not configured") and dispatcher_ok
    return JsonResponse(
        {
            "status": "ok" if healthy else "unhealthy",
            "database": database,
            "broker": broker,
            "dispatcher": {
                "status": "ok" if dispatcher_ok else ("never ticked" if last_tick is None
                                                      else "stale"),
                "last_tick_age_seconds": round(tick_age, 3) if tick_age is not None else None,
                "max_tick_age_seconds": settings.HEALTHZ_MAX_TICK_AGE,
            },
        },
        status=200 if healthy else 503,
    )


class SpringhookCollector:
    """Reads the database at each scrape: every process answers the same numbers, with
    no per-process counters to add up."""

    def collect(self):
        now = timezone.now()
        labels = ["webhook_id", "webhook"]
        pending = GaugeMetricFamily(
            "springhook_pending_entries", "Coalesced changes waiting per webhook.", labels=labels
        )
        oldest = GaugeMetricFamily(
            "springhook_pending_oldest_age_seconds",
            "Age of the oldest waiting change per webhook (0 when none waits).", labels=labels,
        )
        state = GaugeMetricFamily(
            "springhook_webhook_state", "1 for the webhook's current state.",
            labels=[*labels, "state"],
        )
        attempts = GaugeMetricFamily(
            "springhook_webhook_attempts_24h", "Finished attempts of the last 24 hours.",
            labels=[*labels, "outcome"],
        )
        unaccepted = GaugeMetricFamily(
            "springhook_webhook_unaccepted_entries",
            "Entries not accepted yet per webhook: waiting ones and the open batch's.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "springhook_webhook_lag_seconds",
            "Age of the oldest entry not accepted yet per webhook (0 when none).", labels=labels,
        )
        for row in webhooks_health(now=now):
            ids = [str(row.webhook.pk), row.webhook.name]
            pending.add_metric(ids, row.pending_entries)
            age = row.oldest_pending_age(now)
            oldest.add_metric(ids, age.total_seconds() if age else 0.0)
            unaccepted.add_metric(ids, row.unaccepted_entries)
            behind = row.lag(now)
            lag.add_metric(ids, behind.total_seconds() if behind else 0.0)
            for name in ("healthy", "failing", "paused"):
                state.add_metric([*ids, name], 1.0 if row.state == name else 0.0)
            attempts.add_metric([*ids, "accepted"], row.last_day.accepted)
            attempts.add_metric([*ids, "failed"], row.last_day.attempts - row.last_day.accepted)
        yield from (pending, oldest, unaccepted, lag, state, attempts)

        open_deliveries = GaugeMetricFamily(
            "springhook_deliveries_open",
            "Batches not accepted yet, by state: pending (not tried) or failing.",
            labels=["state"],
        )
        for name, count in deliveries_open_by_state().items():
            open_deliveries.add_metric([name], count)
        yield open_deliveries
        yield GaugeMetricFamily(
            "springhook_deliveries_accepted_24h",
            "Batches accepted in the last 24 hours.",
            value=deliveries_accepted_since(since=now - timedelta(hours=24)),
        )

        counts, count, total = attempt_durations_histogram(
            since=now - DURATION_WINDOW, buckets=DURATION_BUCKETS
        )
        yield HistogramMetricFamily(
            "springhook_attempt_duration_seconds",
            "Duration of the attempts started in the last hour (a sliding window: use "
            "histogram_quantile on it directly, without rate()).",
            buckets=[
                *[(str(bound), value) for bound, value in zip(DURATION_BUCKETS, counts,
                                                              strict=True)],
                ("+Inf", count),
            ],
            sum_value=total,
        )

        last_tick = dispatcher_last_tick()
        tick = GaugeMetricFamily(
            "springhook_dispatcher_last_tick_age_seconds",
            "Seconds since the dispatcher last ticked (absent when it never did).",
        )
        if last_tick:
            tick.add_metric([], _tick_age(last_tick, now))
        yield tick


def _metrics_token_given(request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken tells nothing about how much of the token was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), settings.METRICS_TOKEN.encode()
    )


@never_cache
@require_GET
def metrics(request):
    """Prometheus text format; with METRICS_TOKEN set, only for `Authorization: Bearer`."""
    if settings.METRICS_TOKEN and not _metrics_token_given(request):
        response = HttpResponse("401 Unauthorized: /metrics needs its bearer token.\n",
                                status=401, content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SpringhookCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@require_safe
def openapi_json(request):
    """The OpenAPI 3.1 description of the Trainings API and the webhook; needs no API key,
    so that partners can read it before they have one."""
    return JsonResponse(openapi_document(), json_dumps_params={"indent": 2})
