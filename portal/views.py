"""The partner portal's pages: thin views over the services of deliveries, webhooks and
apikeys. Every page answers for the session's API key alone: another partner's webhook or
delivery is a 404, the same as one that does not exist.

The portal's session lives in Django's session under PORTAL_SESSION (the key, whether it
may act, until when), next to (never instead of) a staff user's admin login.
"""

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import markdown
from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apikeys.models import ApiKey
from apikeys.selectors import api_key_webhooks
from deliveries.models import Delivery
from deliveries.selectors import (
    webhook_deliveries_page,
    webhook_delivery_get,
    webhook_last_accepted,
    webhooks_health,
)
from deliveries.services import DeliveryError, ScopeError, TooSoon, UnknownInstitutes
from deliveries.services.partner import (
    partner_delivery_resend,
    partner_pause,
    partner_resume,
    partner_resync,
    partner_scope_change,
    partner_secret_rotate,
    partner_test_send,
    partner_url_change,
)
from portal.services import PortalLinkRefused, portal_link_redeem
from webhooks.models import ScopeObjects, Webhook, WebhookAction
from webhooks.secrets import secret_fingerprint
from webhooks.services import Actor, WebhookError

PORTAL_SESSION = "portal"
PAGE_SIZE = 25
ATTEMPTS_SHOWN = 50
STATES = tuple(Delivery.State.values)
DOCS_DIRECTORY = Path(settings.BASE_DIR) / "docs"

# Up to this many institutes in the catalogue, the scope form lists them to pick from;
# beyond, it takes their ids, comma-separated (a list of thousands is no form for people).
SCOPE_CHOICES_LIMIT = 200
# Institutes named on a page; a larger scope is counted after these.
SCOPE_NAMES_SHOWN = 20

# Scripts and styles from this site only, no inline code, no frames, forms posting here:
# whatever a partner's answer holds is shown as text and can never run.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class PortalSession:
    api_key: ApiKey
    can_act: bool
    until: datetime

    @property
    def actor(self) -> Actor:
        return Actor(channel=WebhookAction.Channel.PORTAL, label=str(self.api_key),
                     api_key_id=self.api_key.pk)


def _secured(response: HttpResponse) -> HttpResponse:
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # Nothing of a portal address goes to another site; same-origin, not no-referrer,
    # because under no-referrer browsers send `Origin: null`, which CSRF checks refuse.
    response["Referrer-Policy"] = "same-origin"
    # Pages show a partner's data: no cache on the way or in the browser keeps them.
    add_never_cache_headers(response)
    return response


def portal_view(view: Callable | None = None, *, signed_in: bool = True, act: bool = False):
    """A portal page: the strict headers on every answer; with `signed_in`, the session's
    key in `request.portal` (or the "not signed in" page); with `act`, POST only and an
    acting session only. Http404 becomes the portal's own 404 page."""
    if view is None:
        return functools.partial(portal_view, signed_in=signed_in, act=act)

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            if signed_in:
                request.portal = _portal_session(request)
                if request.portal is None:
                    return _secured(_page(request, "portal/signed_out.html",
                                          {"title": "Not signed in"}, status=401))
                if act and request.method != "POST":
                    response = _page(request, "portal/message.html",
                                     {"title": "Use the page's buttons",
                                      "text": "This address only takes the page's buttons."},
                                     status=405)
                    response["Allow"] = "POST"
                    return _secured(response)
                if act and not request.portal.can_act:
                    return _secured(_page(request, "portal/message.html", {
                        "title": "Read-only",
                        "text": "You signed in with a read-only link: it shows your webhooks "
                        "and deliveries but changes nothing. Ask for an acting link to "
                        "resend, pause or change your webhook.",
                    }, status=403))
            response = view(request, *args, **kwargs)
        except Http404:
            response = _page(request, "portal/message.html", {
                "title": "Not found",
                "text": "There is nothing here, or it is not yours to see.",
            }, status=404)
        return _secured(response)

    return wrapper


def _portal_session(request: HttpRequest) -> PortalSession | None:
    data = request.session.get(PORTAL_SESSION)
    if not isinstance(data, dict):
        return None
    until = datetime.fromtimestamp(data.get("until", 0), UTC)
    api_key = ApiKey.objects.filter(pk=data.get("api_key"), is_active=True).first()
    if until <= timezone.now() or api_key is None:
        request.session.pop(PORTAL_SESSION, None)
        return None
    return PortalSession(api_key=api_key, can_act=bool(data.get("can_act")), until=until)


def _page(request: HttpRequest, template: str, context: dict, status: int = 200) -> HttpResponse:
    portal = getattr(request, "portal", None)
    return render(request, template, {"portal": portal, **context}, status=status)


def _own_webhook(request: HttpRequest, webhook_id: int) -> Webhook:
    webhook = api_key_webhooks(api_key=request.portal.api_key).filter(pk=webhook_id).first()
    if webhook is None:
        raise Http404
    return webhook


def _institutes():
    # Looked up by name, not imported: the catalogue lies above the portal (as in the
    # webhooks' admin). Only names and ids are read.
    return apps.get_model("catalog", "Institute").objects.order_by("name", "id")


def _scopes(webhooks: list[Webhook]) -> dict[int, dict]:
    """Each webhook's scope in words: its institutes by name (the first
    SCOPE_NAMES_SHOWN, in one query for all of them) or the whole catalogue, and the kinds
    of object."""
    shown = {webhook.pk: sorted(webhook.scope_institutes)[:SCOPE_NAMES_SHOWN]
             for webhook in webhooks if webhook.scope_institutes is not None}
    wanted = {institute for ids in shown.values() for institute in ids}
    names = dict(_institutes().filter(pk__in=wanted).values_list("pk", "name")) if wanted else {}
    scopes = {}
    for webhook in webhooks:
        institutes = webhook.scope_institutes
        scopes[webhook.pk] = {
            "whole": institutes is None,
            "count": 0 if institutes is None else len(set(institutes)),
            # An institute deleted since stays in the scope (its destroy still goes out).
            "names": [names.get(pk, f"institute {pk} (deleted)")
                      for pk in shown.get(webhook.pk, [])],
            "more": 0 if institutes is None else max(0, len(set(institutes)) - SCOPE_NAMES_SHOWN),
            "objects": webhook.get_scope_objects_display(),
        }
    return scopes


def _scope_asked(request: HttpRequest) -> tuple[list[int] | None, str]:
    """The scope the form asks for: the institutes picked (`institutes`, repeated) or
    typed (`institute_ids`, comma-separated), none meaning the whole catalogue; and the
    kinds of object. Raises ScopeError naming what is not an id or a kind."""
    raw = [*request.POST.getlist("institutes"),
           *request.POST.get("institute_ids", "").replace(";", ",").split(",")]
    raw = [part.strip() for part in raw if part.strip()]
    bad = [part for part in raw if not part.isdigit() or len(part) > 18]
    if bad:
        raise ScopeError("institutes must be ids (whole numbers), comma-separated; not "
                         + ", ".join(f"“{part[:20]}”" for part in bad[:5]))
    objects = request.POST.get("objects", ScopeObjects.ALL)
    if objects not in ScopeObjects.values:
        raise ScopeError(f"objects must be one of {', '.join(ScopeObjects.values)}")
    return (sorted({int(part) for part in raw}) or None), objects


def _webhook_url(webhook_id: int) -> str:
    return reverse("portal:webhook", args=[webhook_id])


# --- Signing in and out ------------------------------------------------------------------


# Exempt, so that a stray POST is not refused with a CSRF warning that logs the path (it
# holds the token); nothing but a GET does anything here.
@csrf_exempt
@portal_view(signed_in=False)
def sign_in(request: HttpRequest, token: str) -> HttpResponse:
    """Exchange the link's token for a session, then redirect: the address with the token
    leaves the address bar, and (a redirect is no page) the history."""
    if request.method != "GET":
        # A link checker's HEAD (or anything but a browser's GET) leaves the link unused.
        # Not a 4xx: Django logs those with their path, and the path holds the token.
        return HttpResponse(status=204)
    try:
        grant = portal_link_redeem(raw_token=token)
    except PortalLinkRefused as refused:
        return HttpResponseRedirect(reverse("portal:link_refused") + f"?reason={refused.reason}")
    # A new session key: whoever knew the old one (fixation) does not get this session.
    request.session.cycle_key()
    until = timezone.now() + timedelta(seconds=settings.PORTAL_SESSION_MAX_AGE)
    request.session[PORTAL_SESSION] = {
        "api_key": grant.api_key_id, "can_act": grant.can_act, "until": until.timestamp(),
    }
    request.session.set_expiry(settings.PORTAL_SESSION_MAX_AGE)
    return HttpResponseRedirect(reverse("portal:home"))


REFUSALS = {
    "used": "This sign-in link was used already: each link works once.",
    "expired": "This sign-in link has expired: a link works for a short time only.",
    "revoked": "The API key this link was made for has been revoked.",
    "unknown": "This sign-in link is not valid: it may have been copied incompletely.",
}


@portal_view(signed_in=False)
def link_refused(request: HttpRequest) -> HttpResponse:
    reason = request.GET.get("reason", "unknown")
    return _page(request, "portal/link_refused.html", {
        "title": "Sign-in link not valid",
        "text": REFUSALS.get(reason, REFUSALS["unknown"]),
        "lifetime_minutes": settings.PORTAL_LINK_LIFETIME // 60,
        "api_base_url": settings.API_BASE_URL,
    }, status=403)


@require_POST
@portal_view(signed_in=False)
def sign_out(request: HttpRequest) -> HttpResponse:
    request.session.pop(PORTAL_SESSION, None)
    request.session.cycle_key()
    return HttpResponseRedirect(reverse("portal:signed_out"))


@portal_view(signed_in=False)
def signed_out(request: HttpRequest) -> HttpResponse:
    return _page(request, "portal/signed_out.html", {"title": "Signed out"})


# --- Seeing ------------------------------------------------------------------------------


@portal_view
def home(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    rows = []
    webhooks = list(api_key_webhooks(api_key=request.portal.api_key))
    scopes = _scopes(webhooks)
    for webhook in webhooks:
        for health in webhooks_health(now=now, webhook_id=webhook.pk):
            waiting = health.open_delivery
            rows.append({
                "health": health,
                "scope": scopes[webhook.pk],
                "age": health.oldest_pending_age(now),
                "last": webhook_last_accepted(webhook_id=webhook.pk),
                "open_age": now - waiting.created_at if waiting else None,
            })
    return _page(request, "portal/home.html", {"title": "Your webhooks", "rows": rows})


def _day(raw: str | None, name: str, errors: list[str]) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        errors.append(f"{name} must be a date like 2026-12-04; “{raw[:40]}” was ignored.")
        return None


@portal_view
def webhook_page(request: HttpRequest, webhook_id: int) -> HttpResponse:
    webhook = _own_webhook(request, webhook_id)
    now = timezone.now()
    health = webhooks_health(now=now, webhook_id=webhook.pk)[0]
    errors: list[str] = []
    state = request.GET.get("state") or None
    if state is not None and state not in STATES:
        errors.append(f"state must be one of {', '.join(STATES)}; “{state[:40]}” was ignored.")
        state = None
    day_from = _day(request.GET.get("from"), "From", errors)
    day_to = _day(request.GET.get("to"), "To", errors)
    raw_page = request.GET.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 0 < int(raw_page) < 10**9 else 1
    window = {
        "created_from": day_from,
        "created_before": day_to + timedelta(days=1) if day_to else None,
    }
    result = webhook_deliveries_page(
        webhook_id=webhook.pk, state=state, page=page, page_size=PAGE_SIZE, **window
    )
    if page > result.last_page:  # past the end: show the last page rather than nothing
        page = result.last_page
        result = webhook_deliveries_page(
            webhook_id=webhook.pk, state=state, page=page, page_size=PAGE_SIZE, **window
        )
    query = {"state": state or "", "from": request.GET.get("from", "") if day_from else "",
             "to": request.GET.get("to", "") if day_to else ""}
    return _page(request, "portal/webhook.html", {
        "title": webhook.name,
        "webhook": webhook,
        "health": health,
        "age": health.oldest_pending_age(now),
        "open_age": now - health.open_delivery.created_at if health.open_delivery else None,
        "last": webhook_last_accepted(webhook_id=webhook.pk),
        "scope": _scopes([webhook])[webhook.pk],
        "scope_form": _scope_form(webhook) if request.portal.can_act else None,
        "fingerprint": secret_fingerprint(webhook.secret),
        "previous_fingerprint": secret_fingerprint(webhook.previous_secret)
        if webhook.previous_secret and webhook.previous_secret_expires_at
        and webhook.previous_secret_expires_at > now else None,
        "previous_until": webhook.previous_secret_expires_at,
        "deliveries": result.deliveries,
        "count": result.count,
        "page": page,
        "last_page": result.last_page,
        "states": STATES,
        "query": query,
        "filter_errors": errors,
        "filtered": bool(state or day_from or day_to),
    })


def _scope_form(webhook: Webhook) -> dict:
    """The scope form's choices: the institutes to pick from while they are few (None:
    type their ids), and the kinds of object."""
    chosen = set(webhook.scope_institutes or ())
    institutes = list(_institutes().values_list("pk", "name")[:SCOPE_CHOICES_LIMIT + 1])
    return {
        # Tall enough to read as a list to pick from (a list of one looks like a menu).
        "size": min(max(len(institutes), 3), 8),
        "choices": None if len(institutes) > SCOPE_CHOICES_LIMIT else [
            {"id": pk, "name": name, "chosen": pk in chosen} for pk, name in institutes
        ],
        "ids": ", ".join(str(pk) for pk in sorted(chosen)),
        "objects": [{"value": value, "label": label, "chosen": value == webhook.scope_objects}
                    for value, label in ScopeObjects.choices],
    }


@portal_view
def delivery_page(request: HttpRequest, webhook_id: int, message_id: str) -> HttpResponse:
    webhook = _own_webhook(request, webhook_id)
    delivery = webhook_delivery_get(webhook_id=webhook.pk, message_id=message_id)
    if delivery is None:
        raise Http404
    attempts = list(delivery.attempts.all())
    try:
        body = json.dumps(json.loads(delivery.payload), indent=2, ensure_ascii=False)
    except ValueError:
        body = delivery.payload
    return _page(request, "portal/delivery.html", {
        "title": f"Delivery {delivery.message_id}",
        "webhook": webhook,
        "delivery": delivery,
        "body": body,
        # A page of a size people read: the latest attempts (a delivery failing for days
        # has hundreds); the earlier ones are counted.
        "attempts": attempts[-ATTEMPTS_SHOWN:],
        "earlier_attempts": max(0, len(attempts) - ATTEMPTS_SHOWN),
        "resendable": delivery.is_open,
    })


# The documents the portal shows, by the name they link each other with.
DOCUMENTS = {"partners.md": "Partner guide", "contract.md": "Delivery contract"}


@portal_view
def docs(request: HttpRequest, name: str = "partners.md") -> HttpResponse:
    """docs/partners.md (and the contract it links to), rendered: the same text partners
    read in the repository, with its screenshots."""
    if name not in DOCUMENTS:
        raise Http404
    try:
        text = (DOCS_DIRECTORY / name).read_text(encoding="utf-8")
    except OSError:
        raise Http404 from None
    html = markdown.markdown(text, extensions=["fenced_code", "tables", "toc"])
    return _page(request, "portal/docs.html", {
        "title": DOCUMENTS[name], "content": mark_safe(html),  # noqa: S308 -- our own files
    })


@portal_view
def docs_screenshot(request: HttpRequest, name: str) -> HttpResponse:
    """A screenshot the guide shows (docs/screenshots/<name>.png)."""
    path = DOCS_DIRECTORY / "screenshots" / f"{name}.png"
    if not path.is_file():
        raise Http404
    return FileResponse(path.open("rb"), content_type="image/png")


# --- Acting ------------------------------------------------------------------------------


def _done(request: HttpRequest, webhook_id: int, message: str, ok: bool = True) -> HttpResponse:
    (messages.success if ok else messages.warning)(request, message)
    return HttpResponseRedirect(_webhook_url(webhook_id))


@portal_view(act=True)
def resend(request: HttpRequest, webhook_id: int, message_id: str) -> HttpResponse:
    webhook = _own_webhook(request, webhook_id)
    try:
        message = partner_delivery_resend(
            webhook_id=webhook.pk, message_id=message_id, actor=request.portal.actor
        )
    except DeliveryError as error:
        messages.warning(request, str(error))
    else:
        messages.success(request, message)
    return HttpResponseRedirect(reverse("portal:delivery", args=[webhook.pk, message_id]))


@portal_view(act=True)
def act(request: HttpRequest, webhook_id: int, action: str) -> HttpResponse:
    """The webhook page's buttons: test, resync, pause, resume, rotate-secret, change-url,
    change-scope."""
    webhook = _own_webhook(request, webhook_id)
    actor = request.portal.actor
    try:
        if action == "test":
            delivery = partner_test_send(webhook_id=webhook.pk, actor=actor)
            message = (f"Test event {delivery.message_id} queued: it goes out within a few "
                       "seconds; its answer shows in the list below.")
        elif action == "resync":
            count = partner_resync(webhook_id=webhook.pk, actor=actor)
            message = (f"Queued the whole catalogue ({count} institute"
                       f"{'s' if count != 1 else ''}): it goes out after what already waits.")
        elif action == "pause":
            message = partner_pause(webhook_id=webhook.pk, actor=actor)
        elif action == "resume":
            message = partner_resume(webhook_id=webhook.pk, actor=actor)
        elif action == "rotate-secret":
            rotated = partner_secret_rotate(webhook_id=webhook.pk, actor=actor)
            return _page(request, "portal/secret_rotated.html", {
                "title": "New signing secret", "webhook": rotated.webhook,
                "secret": rotated.secret, "message": rotated.message,
                "fingerprint": secret_fingerprint(rotated.secret),
            })
        elif action == "change-scope":
            institute_ids, objects = _scope_asked(request)
            _, message = partner_scope_change(
                webhook_id=webhook.pk, institute_ids=institute_ids, objects=objects,
                actor=actor,
            )
        elif action == "change-url":
            message = partner_url_change(
                webhook_id=webhook.pk, url=request.POST.get("url", ""), actor=actor
            )
        else:
            raise Http404
    except TooSoon as error:
        return _done(request, webhook.pk, str(error), ok=False)
    except UnknownInstitutes as error:
        return _done(request, webhook.pk, (
            f"No institute has the id{'s' if len(error.institute_ids) > 1 else ''} "
            f"{', '.join(map(str, error.institute_ids))}: the scope was not changed."
        ), ok=False)
    except ScopeError as error:
        return _done(request, webhook.pk,
                     f"The scope was not changed: {error}.", ok=False)
    except (DeliveryError, WebhookError) as error:
        text = str(error)
        return _done(request, webhook.pk, text[:1].upper() + text[1:], ok=False)
    return _done(request, webhook.pk, message)
