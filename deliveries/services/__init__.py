"""The delivery engine, one module per step, in the order work flows through them:

collect     recorded changes → the coalesced change stream (one row per object, a
            cursor per webhook) and entries meant for one webhook alone
batch       a webhook's part of the stream and its own entries → the body of its next
            delivery; which webhooks have work due
claim       many webhooks' next attempts taken under leases (one short transaction)
send        an attempt signed and POSTed (no transaction open)
record      many outcomes stored together, retries scheduled, the webhooks' health updated,
            and the next attempts claimed in the same transaction
notify      mail to staff about failing, recovered and gone webhooks
operations  what operators and partners ask for: retry now, a test event, a resync,
            a replay
scope       which part of the stream a webhook reads; what a changed scope sends
retention   old accepted deliveries deleted
periodic    the periodic jobs (heartbeat, collect, notify, prune; the table that the
            embedded dispatcher and Celery beat both read: deliveries.periodic) run
dispatch    the tick as the Celery beat runs it: the periodic jobs, then the webhooks
            with an attempt due (the engine, deliveries.engine, then runs claim, send
            and record for many webhooks at once)

The statements on the change stream's tables that collect, batch and scope run are in
deliveries.stream, below these modules.

Callers import from here (`from deliveries.services import dispatch_tick`).
"""

from deliveries.coalescing import action_merge
from deliveries.scoping import StreamFilter, stream_filter
from deliveries.services.batch import (
    BatchEntry,
    batch_take,
    batches_take,
    bundle_delay,
    webhooks_due,
)
from deliveries.services.claim import (
    Claim,
    deliveries_claim,
    delivery_claim,
    lease_seconds,
    message_id_generate,
    webhook_signing_secrets,
)
from deliveries.services.collect import changes_collect, changes_fold
from deliveries.services.dispatch import dispatch_tick
from deliveries.services.errors import DeliveryError, ResyncTooSoon, TestTooSoon, TooSoon
from deliveries.services.notify import FAILURE_NOTIFY_AFTER, webhooks_failure_notify
from deliveries.services.operations import (
    delivery_test_send,
    delivery_tests_drop,
    test_interval_take,
    webhook_replay,
    webhook_resync,
    webhook_retry_now,
)
from deliveries.services.periodic import (
    PeriodicRunner,
    dispatcher_heartbeat_record,
    periodic_jobs_run,
)
from deliveries.services.record import (
    RETRY_AFTER_CAP,
    deliveries_record,
    deliveries_record_and_claim,
    delivery_record,
    retry_delay,
)
from deliveries.services.retention import PRUNE_BATCH, deliveries_prune
from deliveries.services.scope import (
    ScopeChanged,
    ScopeError,
    ScopeTooSoon,
    UnknownInstitutes,
    scoped_cursors_advance,
    webhook_scope_change,
)
from deliveries.services.send import USER_AGENT, delivery_send

__all__ = [
    "FAILURE_NOTIFY_AFTER",
    "PRUNE_BATCH",
    "RETRY_AFTER_CAP",
    "USER_AGENT",
    "BatchEntry",
    "Claim",
    "PeriodicRunner",
    "DeliveryError",
    "ResyncTooSoon",
    "TestTooSoon",
    "TooSoon",
    "ScopeChanged",
    "ScopeError",
    "ScopeTooSoon",
    "StreamFilter",
    "UnknownInstitutes",
    "action_merge",
    "batch_take",
    "batches_take",
    "bundle_delay",
    "changes_collect",
    "changes_fold",
    "deliveries_claim",
    "deliveries_prune",
    "deliveries_record",
    "deliveries_record_and_claim",
    "delivery_claim",
    "delivery_record",
    "delivery_send",
    "delivery_test_send",
    "delivery_tests_drop",
    "test_interval_take",
    "dispatch_tick",
    "dispatcher_heartbeat_record",
    "lease_seconds",
    "message_id_generate",
    "periodic_jobs_run",
    "retry_delay",
    "scoped_cursors_advance",
    "stream_filter",
    "webhook_replay",
    "webhook_resync",
    "webhook_retry_now",
    "webhook_scope_change",
    "webhook_signing_secrets",
    "webhooks_due",
    "webhooks_failure_notify",
]
