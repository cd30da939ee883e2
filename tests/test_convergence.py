"""Convergence: whatever happens to the catalogue and however the partner fails meanwhile,
once the outage is over the partner's mirror equals the catalogue exactly.

Everything is real: the API server (`manage.py runserver`), the dispatcher
(`manage.py run_dispatcher`) and the reference receiver (examples/partner/receiver.py)
run as subprocesses on this test's database, and a fault-injecting proxy between the
dispatcher and the receiver answers 500 or 503, hangs past the timeout, drops
connections, or loses the receiver's answer, for random stretches. Meanwhile this process
makes a few hundred random changes: creates, updates, moves and deletes of trainings and
institutes, imports that add, change and drop trainings, and bulk updates and creates,
then an import followed by edits of every institute.

Halfway through, a second partner joins with an empty mirror: its webhook is created then
(so it receives only later changes) and its receiver asks for a resync at start, which
sends it the whole catalogue through the same ordered channel, mixed with the changes
that keep coming. Its mirror must converge too.

Two checks after the outage: the receivers' mirrors equal the catalogue (ids, names,
references, institute ids), and every object that is gone got `destroy` as the last entry
the partner accepted for it. The second looks at the wire: the reference receiver also
deletes what the API answers 404 for, so it would converge even if a destroy had been
turned into an update; a partner that trusts the actions would not.

Partners with a scope run beside them, each with its own receiver keeping a scoped
mirror (`--scoped`): one with a few institutes, one with institutes only, one with the
trainings of a few institutes. Along the random history their scopes change, by staff
(the service the admin calls) and by the partner (`PUT /webhooks/<id>/scope`), and they
are paused, resumed and resynced; at the end each mirror equals the catalogue restricted
to its scope (catalog.selectors.scope_contents).

A run prints its seed when it fails; `CONVERGENCE_SEED=<seed>` repeats its operations
(the timing of processes and faults is not repeatable).
"""

import json
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from apikeys.services import api_key_create
from catalog.models import Institute, Training
from catalog.selectors import scope_contents
from catalog.services import (
    FeedRecord,
    import_run,
    trainings_bulk_create,
    trainings_bulk_update,
)
from changes.models import Change
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.services import webhook_resync, webhook_scope_change
from tests.deliveries.helpers import nothing_waits
from tests.support import processes
from tests.support.fault_proxy import FaultProxy
from webhooks.models import ScopeObjects, Webhook
from webhooks.services import webhook_pause, webhook_resume

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OPERATIONS = 600
# Operations after the final imports, none an import (see the test).
TAIL_OPERATIONS = 80
# Seconds the sender waits for an answer; the proxy's hangs last longer than that.
SEND_TIMEOUT = 2
# The partner's faults (see tests/support/fault_proxy.py).
FAULTS = ("error", "throttle", "hang", "drop", "lost_answer", "late_answer")
SETTLE_TIMEOUT = 90


@dataclass
class Loop:
    proxy: FaultProxy
    receiver_url: str
    services: list[processes.Service]
    api_url: str
    log_dir: object
    late_receiver_url: str = ""
    scoped: list["ScopedPartner"] = field(default_factory=list)

    def receiver_urls(self) -> list[str]:
        return [url for url in (self.receiver_url, self.late_receiver_url) if url] + [
            partner.receiver_url for partner in self.scoped
        ]

    def logs(self) -> str:
        return "\n".join(
            f"--- {service.name} (last lines)\n{service.tail()}" for service in self.services
        )


@pytest.fixture
def loop(transactional_db, tmp_path):
    _, api_key = api_key_create(name="Convergence partner")
    # A placeholder URL until the proxy runs: the receiver needs the secret first.
    webhook = Webhook.objects.create(name="Convergence partner", url="http://127.0.0.1:9/")
    services: list[processes.Service] = []
    proxy = None
    try:
        receiver = processes.receiver(
            secret=webhook.secret, api_key=api_key, db_path=tmp_path / "mirror.sqlite3",
            log_dir=tmp_path,
        )
        services.append(receiver.start())
        receiver_url = receiver.wait_for_log(r"listening on (http://\S+)").group(1)
        proxy = FaultProxy(receiver_url, hang_seconds=SEND_TIMEOUT + 1).start()
        webhook.url = proxy.url
        webhook.save()

        port = processes.free_port()
        env = {
            "DATABASE_URL": processes.current_database_url(),
            "API_BASE_URL": f"http://127.0.0.1:{port}",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "1",
            "WEBHOOK_BUNDLE_DELAY": "0.3",
            # Small batches: many of them, in order, each a chance for a fault.
            "WEBHOOK_BATCH_SIZE": "20",
            "WEBHOOK_TIMEOUT": str(SEND_TIMEOUT),
            "WEBHOOK_CONNECT_TIMEOUT": "1",
            "WEBHOOK_RETRY_SCHEDULE": "0.3,0.6,1.2",
            "WEBHOOK_TICK_SECONDS": "0.2",
            # Scoped partners change their scopes often: no wait between widenings.
            "WEBHOOK_RESYNC_INTERVAL": "0",
        }
        server = processes.server(port=port, env=env, log_dir=tmp_path)
        services.append(server.start())
        server.wait_listening(port)
        dispatcher = processes.dispatcher(env=env, log_dir=tmp_path)
        services.append(dispatcher.start())
        dispatcher.wait_for_log("dispatcher started")
        yield Loop(proxy=proxy, receiver_url=receiver_url, services=services,
                   api_url=env["API_BASE_URL"], log_dir=tmp_path)
    finally:
        # Before pytest-django empties the tables: nothing may hold the database then.
        for service in reversed(services):
            service.stop()
        if proxy is not None:
            proxy.stop()


class CatalogueChanges:
    """Random changes to the catalogue through every path that records changes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.serial = 0
        # An institute left alone (with its trainings) from some point on: what is in it
        # reaches a partner that joins then only through a resync.
        self.protected: int | None = None
        self.done: Counter[str] = Counter()
        self.operations = {
            self.create_institute: 4, self.rename_institute: 6, self.delete_institute: 2,
            self.create_training: 20, self.rename_training: 20, self.re_reference_training: 5,
            self.move_training: 6, self.delete_training: 10, self.import_feed: 8,
            self.import_then_edit: 4, self.bulk_update: 5, self.bulk_create: 4,
        }

    def step(self, *, imports: bool = True) -> None:
        operations = {
            operation: weight for operation, weight in self.operations.items()
            if imports or operation not in (self.import_feed, self.import_then_edit)
        }
        operation = self.rng.choices(list(operations), list(operations.values()))[0]
        if not self._institute_ids():
            operation = self.create_institute
        operation()
        self.done[operation.__name__] += 1

    # Names and references are unique per run, so every edit is a visible difference.
    def _label(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix} {self.serial}" + self.rng.choice(["", " — Académie", " 研修"])

    def _reference(self) -> str:
        self.serial += 1
        return f"R-{self.serial}"

    def _institute_ids(self) -> list[int]:
        return list(
            Institute.objects.exclude(pk=self.protected).order_by("id").values_list("id", flat=True)
        )

    def _training(self, institute_id: int | None = None) -> Training | None:
        trainings = Training.objects.exclude(institute_id=self.protected).order_by("id")
        if institute_id is not None:
            trainings = trainings.filter(institute_id=institute_id)
        ids = list(trainings.values_list("id", flat=True))
        return Training.objects.get(pk=self.rng.choice(ids)) if ids else None

    def _institute(self) -> Institute:
        return Institute.objects.get(pk=self.rng.choice(self._institute_ids()))

    def create_institute(self) -> None:
        if len(self._institute_ids()) < 10:
            Institute.objects.create(name=self._label("Institute"))

    def rename_institute(self) -> None:
        institute = self._institute()
        institute.name = self._label("Institute")
        institute.save()

    def delete_institute(self) -> None:
        if len(self._institute_ids()) > 3:
            self._institute().delete()  # its trainings go with it

    def create_training(self) -> None:
        Training.objects.create(
            institute=self._institute(), reference=self._reference(), name=self._label("Course")
        )

    def rename_training(self) -> None:
        if training := self._training():
            training.name = self._label("Course")
            training.save()

    def re_reference_training(self) -> None:
        if training := self._training():
            training.reference = self._reference()
            training.save()

    def move_training(self) -> None:
        if training := self._training():
            training.institute = self._institute()
            training.save()

    def delete_training(self) -> None:
        if training := self._training():
            training.delete()

    def import_feed(self, institute_id: int | None = None) -> int:
        """Replace an institute's trainings: keep some (some renamed), drop the rest, add."""
        institute_id = institute_id or self.rng.choice(self._institute_ids())
        existing = list(
            Training.objects.filter(institute_id=institute_id).values_list("reference", "name")
        )
        kept = self.rng.sample(existing, k=self.rng.randint(0, len(existing)))
        records = [
            FeedRecord(reference, self._label("Imported") if self.rng.random() < 0.4 else name,
                       "", None)
            for reference, name in kept
        ]
        records += [
            FeedRecord(self._reference(), self._label("Imported"), "", None)
            for _ in range(self.rng.randint(0, 4))
        ]
        import_run(institute_id=institute_id, records=records)
        return institute_id

    def import_then_edit(self, institute_id: int | None = None) -> None:
        """An import, then edits of the institute and one of its trainings right after:
        the partner must see the edits although the import absorbs or folds them, and
        must still re-read the institute's trainings."""
        institute_id = self.import_feed(institute_id)
        institute = Institute.objects.get(pk=institute_id)
        institute.name = self._label("Institute")
        institute.save()
        if training := self._training(institute_id):
            training.name = self._label("Course")
            training.save()

    def bulk_update(self) -> None:
        ids = list(
            Training.objects.exclude(institute_id=self.protected).values_list("id", flat=True)
        )
        chosen = self.rng.sample(ids, k=min(len(ids), self.rng.randint(1, 8)))
        trainings_bulk_update(
            queryset=Training.objects.filter(pk__in=chosen), name=self._label("Bulk")
        )

    def bulk_create(self) -> None:
        institute = self._institute()
        trainings_bulk_create(
            trainings=[
                Training(institute=institute, reference=self._reference(),
                         name=self._label("Bulk"))
                for _ in range(self.rng.randint(1, 5))
            ]
        )


@dataclass
class ScopedPartner:
    webhook_id: int
    api_key: str
    receiver_url: str


def scoped_partners_join(loop: Loop, rng: random.Random) -> None:
    """Three partners with a scope, each with its own receiver that keeps it and asks for
    a resync of it at start: a few institutes; institutes only; trainings of a few."""
    ids = list(Institute.objects.order_by("id").values_list("id", flat=True))
    for name, institutes, objects in (
        ("Few institutes", rng.sample(ids, 2), ScopeObjects.ALL),
        ("Institutes only", None, ScopeObjects.INSTITUTES),
        ("Trainings of a few", rng.sample(ids, 2), ScopeObjects.TRAININGS),
    ):
        webhook = Webhook.objects.create(
            name=name, url="http://127.0.0.1:9/", scope_institutes=institutes,
            scope_objects=objects,
        )
        _, api_key = api_key_create(name=name, webhook_ids=[webhook.pk])
        receiver = processes.receiver(
            secret=webhook.secret, api_key=api_key,
            db_path=loop.log_dir / f"scoped-{webhook.pk}.sqlite3", log_dir=loop.log_dir,
            name=f"scoped-receiver-{webhook.pk}",
            options=("--scoped", "--resync", "--api-url", loop.api_url),
        )
        loop.services.append(receiver.start())
        url = receiver.wait_for_log(r"listening on (http://\S+)").group(1)
        webhook.url = url
        webhook.save()
        receiver.wait_for_log(r"resync of webhook \d+ queued")
        loop.scoped.append(ScopedPartner(webhook.pk, api_key, url))


class ScopeChanges:
    """Random changes of the scoped partners' scopes, by staff and by the partner, and
    pauses, resumes and resyncs."""

    def __init__(self, loop: Loop, rng: random.Random) -> None:
        self.loop = loop
        self.rng = rng
        self.done: Counter[str] = Counter()

    def _scope(self) -> tuple[list[int] | None, str]:
        ids = list(Institute.objects.values_list("id", flat=True))
        institutes = None if self.rng.random() < 0.25 else self.rng.sample(
            ids, k=min(len(ids), self.rng.randint(1, 4))
        )
        return institutes, self.rng.choice(ScopeObjects.values)

    def step(self) -> None:
        partner = self.rng.choice(self.loop.scoped)
        action = self.rng.choice(["staff", "partner", "pause", "resync"])
        if action == "staff":
            institutes, objects = self._scope()
            webhook_scope_change(webhook_id=partner.webhook_id, institute_ids=institutes,
                                 objects=objects)
        elif action == "partner":
            institutes, objects = self._scope()
            kinds = {"all": ["institute", "training"]}.get(objects, [objects])
            response = requests.put(
                f"{self.loop.api_url}/webhooks/{partner.webhook_id}/scope",
                json={"institutes": institutes, "objects": kinds},
                headers={"X-API-Key": partner.api_key}, timeout=10,
            )
            assert response.status_code == 200, response.text
        elif action == "pause":
            webhook = Webhook.objects.get(pk=partner.webhook_id)
            if webhook.is_active:
                webhook_pause(webhook_id=webhook.pk)
            else:
                webhook_resume(webhook_id=webhook.pk)
        else:
            webhook_resync(webhook_id=partner.webhook_id)
        self.done[action] += 1

    def resume_all(self) -> None:
        for partner in self.loop.scoped:
            if not Webhook.objects.get(pk=partner.webhook_id).is_active:
                webhook_resume(webhook_id=partner.webhook_id)


def scoped_expected(webhook: Webhook) -> dict[str, dict[str, object]]:
    """The catalogue restricted to the webhook's scope, in the shape of GET /mirror."""
    institutes, trainings = scope_contents(
        institute_ids=webhook.scope_institutes, object_kinds=webhook.scope_object_kinds
    )
    return {
        "institutes": {str(i): name for i, name in institutes.values_list("id", "name")},
        "trainings": {
            str(t): [institute_id, reference, name]
            for t, institute_id, reference, name in trainings.values_list(
                "id", "institute_id", "reference", "name"
            )
        },
    }


def outages(proxy: FaultProxy, rng: random.Random, until: threading.Event) -> None:
    """Alternate healthy stretches with stretches of one fault; every fault gets turns."""
    faults: list[str] = []
    while not until.is_set():
        proxy.set_mode("pass")
        if until.wait(rng.uniform(0.5, 2.0)):
            break
        if not faults:
            faults = list(FAULTS)
            rng.shuffle(faults)
        proxy.set_mode(faults.pop())
        until.wait(rng.uniform(0.8, 2.5))
    proxy.set_mode("pass")


def catalogue() -> dict[str, dict[str, object]]:
    """The catalogue in the shape of the receiver's GET /mirror (JSON keys are strings)."""
    return {
        "institutes": {str(i): name for i, name in Institute.objects.values_list("id", "name")},
        "trainings": {
            str(t): [institute_id, reference, name]
            for t, institute_id, reference, name in Training.objects.values_list(
                "id", "institute_id", "reference", "name"
            )
        },
    }


def differences(expected: dict, actual: dict) -> list[str]:
    found = []
    for part in ("institutes", "trainings"):
        want, have = expected[part], actual.get(part, {})
        for key in sorted(set(want) | set(have), key=int):
            if want.get(key) != have.get(key):
                found.append(f"{part[:-1]} {key}: catalogue {want.get(key)!r}, "
                             f"mirror {have.get(key)!r}")
    return found


def destroys_missing(expected: dict, accepted: list[bytes]) -> list[str]:
    """Objects that are gone but whose last entry the partner got is not a `destroy`.

    The reference receiver also deletes what the API answers 404 for, which would hide a
    destroy turned into an update; a partner that only deletes on `destroy` would keep it.
    """
    last: dict[tuple[str, str], str] = {}
    for body in accepted:
        for entry in json.loads(body)["changes"]:
            last[(entry["object"], str(entry["id"]))] = entry["action"]
    existing = {("institute", key) for key in expected["institutes"]} | {
        ("training", key) for key in expected["trainings"]
    }
    return [
        f"{kind} {object_id}: gone, but its last entry was {action!r}"
        for (kind, object_id), action in sorted(last.items(), key=_numeric)
        if (kind, object_id) not in existing and action != "destroy"
    ]


def _numeric(item: tuple[tuple[str, str], str]) -> tuple[str, int]:
    (kind, object_id), _ = item
    return kind, int(object_id)


def settled(loop: Loop) -> bool:
    """Nothing is left to send, and the receivers have applied everything they accepted."""
    if (
        Change.objects.exists()
        or not nothing_waits()
        or Delivery.objects.exclude(state=Delivery.State.DELIVERED).exists()
    ):
        return False
    return all(
        requests.get(f"{url}/healthz", timeout=5).json()["inbox"] == 0
        for url in loop.receiver_urls()
    )


def late_partner_joins(loop: Loop, changes: CatalogueChanges) -> int:
    """A new partner with an empty mirror: a webhook created now, a key that belongs to it,
    and a receiver that asks for a resync at start. One institute with a training is left
    alone from now on; returns its id."""
    witness = Institute.objects.create(name=changes._label("Witness institute"))
    Training.objects.create(institute=witness, reference=changes._reference(),
                            name=changes._label("Witness course"))
    changes.protected = witness.pk
    webhook = Webhook.objects.create(name="Late partner", url="http://127.0.0.1:9/")
    _, api_key = api_key_create(name="Late partner", webhook_ids=[webhook.pk])
    receiver = processes.receiver(
        secret=webhook.secret, api_key=api_key, db_path=loop.log_dir / "late.sqlite3",
        log_dir=loop.log_dir, name="late-receiver",
        options=("--resync", "--api-url", loop.api_url),
    )
    loop.services.append(receiver.start())
    loop.late_receiver_url = receiver.wait_for_log(r"listening on (http://\S+)").group(1)
    webhook.url = loop.late_receiver_url
    webhook.save()
    receiver.wait_for_log(r"resync of webhook \d+ queued")
    return witness.pk


def test_the_partner_mirror_equals_the_catalogue_after_changes_and_outages(loop):
    seed = int(os.environ.get("CONVERGENCE_SEED") or random.SystemRandom().randrange(10**9))
    rng = random.Random(seed)
    changes = CatalogueChanges(rng)
    for _ in range(5):
        changes.create_institute()
    scoped_partners_join(loop, rng)
    scopes = ScopeChanges(loop, random.Random(seed + 2))
    outage_over = threading.Event()
    faults = threading.Thread(
        target=outages, args=(loop.proxy, random.Random(seed + 1), outage_over), daemon=True
    )
    faults.start()
    try:
        for number in range(OPERATIONS):
            if number == OPERATIONS // 2:
                witness = late_partner_joins(loop, changes)
            changes.step()
            if number % 15 == 14:
                scopes.step()
            # Spread the changes over the outages in bursts and pauses, so that batches
            # form and fail all along and the partner has applied a state that later
            # changes again (a lost destroy then leaves an object behind).
            time.sleep(rng.uniform(0, 0.02))
            if number % 50 == 49:
                time.sleep(rng.uniform(0.5, 2))
        # Last, an import and edits right after it, of every institute: whatever the
        # random walk did, the final state depends on an import coalesced with updates.
        for institute_id in changes._institute_ids():
            changes.import_then_edit(institute_id)
        # Deletes and imports shrink the catalogue a lot on some seeds: top it up so that
        # the end state is always a real catalogue to compare.
        while Training.objects.count() < 12:
            changes.create_training()
        # Then more moves, edits and deletes, and scope changes, with no import after
        # them: a move a scoped partner missed would now stay in its mirror.
        for number in range(TAIL_OPERATIONS):
            changes.step(imports=False)
            if number % 2:
                changes.move_training()
            if number % 10 == 9:
                scopes.step()
            time.sleep(rng.uniform(0, 0.02))
    finally:
        outage_over.set()
        faults.join()
        scopes.resume_all()

    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not settled(loop) and time.monotonic() < deadline:
        time.sleep(0.25)
    expected = catalogue()
    mirror = requests.get(f"{loop.receiver_url}/mirror", timeout=5).json()
    late_mirror = requests.get(f"{loop.late_receiver_url}/mirror", timeout=5).json()
    story = (
        f"seed {seed}; operations {dict(changes.done)}; scope changes {dict(scopes.done)}; "
        f"proxy faults {dict(loop.proxy.handled)}"
        f"; receiver answers {dict(loop.proxy.partner_statuses)}"
    )
    story += (f"; catalogue {len(expected['institutes'])} institutes, "
              f"{len(expected['trainings'])} trainings; mirror {len(mirror['institutes'])}, "
              f"{len(mirror['trainings'])}")
    print(story)  # shown with -rP: what this run went through
    assert settled(loop), f"not settled after {SETTLE_TIMEOUT}s; {story}\n{loop.logs()}"
    diff = differences(expected, mirror)
    assert not diff, (
        f"the mirror differs from the catalogue in {len(diff)} objects; {story}\n"
        + "\n".join(diff[:40]) + "\n" + loop.logs()
    )
    # The late partner got the witness institute and its training, untouched since it
    # joined, only through the resync.
    assert str(witness) in late_mirror["institutes"], story
    assert any(value[0] == witness for value in late_mirror["trainings"].values()), story
    late_diff = differences(expected, late_mirror)
    assert not late_diff, (
        f"the late partner's mirror differs from the catalogue in {len(late_diff)} objects; "
        f"{story}\n" + "\n".join(late_diff[:40]) + "\n" + loop.logs()
    )
    scoped_sizes = []
    for partner in loop.scoped:
        webhook = Webhook.objects.get(pk=partner.webhook_id)
        scoped_mirror = requests.get(f"{partner.receiver_url}/mirror", timeout=5).json()
        wanted = scoped_expected(webhook)
        scoped_sizes.append(len(wanted["institutes"]) + len(wanted["trainings"]))
        scoped_diff = differences(wanted, scoped_mirror)
        assert not scoped_diff, (
            f"{webhook} (scope {webhook.scope_institutes}, {webhook.scope_objects}) differs "
            f"from its part of the catalogue in {len(scoped_diff)} objects; {story}\n"
            + "\n".join(scoped_diff[:40]) + "\n" + loop.logs()
        )
    # The scoped partners really held parts of the catalogue, and their scopes changed.
    assert sum(scoped_sizes) > 0 and sum(scopes.done.values()) >= 10, (scoped_sizes, story)
    missing = destroys_missing(expected, loop.proxy.accepted)
    assert not missing, (
        f"{len(missing)} deleted objects got no final destroy; {story}\n" + "\n".join(missing[:40])
    )

    # The run really was what it claims: a real catalogue, real outages, real retries.
    assert len(expected["trainings"]) >= 10 and len(expected["institutes"]) >= 3, story
    faults_met = {mode for mode, count in loop.proxy.handled.items() if count and mode != "pass"}
    assert len(faults_met) >= 3, story
    assert DeliveryAttempt.objects.filter(accepted=False).count() >= 5, story
    assert Delivery.objects.filter(attempt_count__gt=1).exists(), story
