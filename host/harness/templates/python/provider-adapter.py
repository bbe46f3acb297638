"""{{name}}: a paygate provider adapter (WIT `paygate:plugins@0.2.0`, world
`provider-adapter`), made by `paygate plugin new`.

It speaks a small JSON API under the `base-url` setting; change the paths and
field names in the four methods to your provider's:
- `POST payments` opens a payment: `{"id", "url"}` back;
- `GET payments/{id}` reads it: `{"status"}`;
- `POST refunds` gives money back: `{"id", "status"}`;
- `GET refunds/{id}` reads a refund: `{"status"}`.

Setting: `base-url` (required). Secret: `secret-key` (required), sent as a
bearer token. Every failure is one of the WIT's `provider-error` cases, which
decide what paygate does next (`unavailable` is retried later and counts
against the provider's circuit breaker; the others are final).

WIT in Python (componentize-py): records are dataclasses with snake_case
fields, enums are `Enum`s, each variant case is its own dataclass; an
exported function returns its `ok` value and raises `Err(value)` for `err`.
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.provider import (
    PaymentRequest,
    PaymentSession,
    PaymentState,
    ProviderError,
    RefundReason,
    RefundRequest,
    RefundSession,
    RefundState,
    ProviderError_Declined as Declined,
    ProviderError_InvalidRequest as InvalidRequest,
    ProviderError_Misconfigured as Misconfigured,
    ProviderError_Unavailable as Unavailable,
)
from wit_world.imports import config, http

# The longest provider message passed on, so an error page cannot bloat logs.
MAX_MESSAGE = 200

# A provider id as one path segment: anything else must not reach another path.
PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")

PAYMENT_STATES = {
    "succeeded": PaymentState.FINISHED,
    "paid": PaymentState.FINISHED,
    "finished": PaymentState.FINISHED,
    "failed": PaymentState.FAILED,
    "canceled": PaymentState.FAILED,
    "expired": PaymentState.FAILED,
}

REFUND_STATES = {
    "succeeded": RefundState.SUCCEEDED,
    "pending": RefundState.PENDING,
    "processing": RefundState.PENDING,
    "failed": RefundState.FAILED,
    "canceled": RefundState.FAILED,
}

REASONS = {
    RefundReason.REQUESTED_BY_CUSTOMER: "requested_by_customer",
    RefundReason.DUPLICATE: "duplicate",
    RefundReason.FRAUDULENT: "fraudulent",
}


class Provider(exports.Provider):
    """The exported `provider` interface."""

    def create_payment(self, request: PaymentRequest) -> PaymentSession:
        body = {
            "reference": str(request.payment_id),
            "order": str(request.order_id),
            "amount": request.price,
            "currency": request.currency,
            "success_url": request.return_url,
            "cancel_url": request.cancel_url,
            "metadata": dict(request.metadata),
        }
        answer = send(http.Method.POST, "payments", (request.idempotency_key, body))
        return PaymentSession(text(answer, "id"), text(answer, "url"))

    def payment_status(self, reference: str) -> PaymentState:
        answer = send(http.Method.GET, "payments/" + segment(reference))
        return PAYMENT_STATES.get(text(answer, "status"), PaymentState.PENDING)

    def refund(self, request: RefundRequest) -> RefundSession:
        metadata = dict(request.metadata)
        # The provider's refund webhooks can then name paygate's refund.
        metadata["paygate_refund_id"] = str(request.refund_id)
        body = {
            "payment": request.payment_reference,
            "amount": request.price,
            "currency": request.currency,
            "reason": None if request.reason is None else REASONS[request.reason],
            "metadata": metadata,
        }
        answer = send(http.Method.POST, "refunds", (request.idempotency_key, body))
        return RefundSession(text(answer, "id"), refund_state(answer))

    def refund_status(self, reference: str) -> RefundState:
        return refund_state(send(http.Method.GET, "refunds/" + segment(reference)))


def send(method: http.Method, path: str, body=None) -> dict:
    """Sends one request under `base-url` and returns its JSON object, or
    raises the `provider-error` its failure means. A body comes with its
    idempotency key."""
    # Checked before anything is sent: without them no request can be right.
    base_url = required(config.get("base-url"), "setting `base-url`")
    key = required(config.secret("secret-key"), "secret `secret-key`")
    headers = [("Authorization", f"Bearer {key}"), ("Accept", "application/json")]
    data = b""
    if body is not None:
        idempotency_key, value = body
        headers += [("Idempotency-Key", idempotency_key), ("Content-Type", "application/json")]
        data = json.dumps(value, separators=(",", ":")).encode()
    url = base_url.rstrip("/") + "/" + path
    try:
        response = http.send(http.Request(method, url, headers, data, None))
    except Err as failed:
        raise Err(transport_error(failed.value)) from None
    try:
        answer = json.loads(response.body)
    except ValueError:
        answer = None
    if 200 <= response.status < 300:
        if not isinstance(answer, dict):
            raise Err(Unavailable(f"HTTP {response.status} whose body is not a JSON object"))
        return answer
    raise Err(status_error(response.status, message(answer)))


def status_error(status: int, message: str | None) -> ProviderError:
    """What an HTTP status means for the payment or refund."""
    message = message or f"HTTP {status}"
    if status == 402:
        return Declined(message)
    if status in (401, 403):
        return Misconfigured(f"credentials refused: {message}")
    if status in (408, 429) or status >= 500:
        return Unavailable(message)
    if 400 <= status < 500:
        return InvalidRequest(message)
    return Unavailable(message)


def transport_error(error) -> ProviderError:
    """What a failed send means: the host refused it, or the provider did not answer."""
    match error:
        case http.HttpError_Denied(host):
            return Misconfigured(f"{host} is not among the plugin's allowed_hosts")
        case http.HttpError_InvalidRequest(why):
            return Misconfigured(f"the request could not be sent: {why}")
        case http.HttpError_Timeout():
            return Unavailable("no answer in time")
        case http.HttpError_TooLarge():
            return Unavailable("the answer is too large")
        case http.HttpError_Transport(why):
            return Unavailable(why)
    return Unavailable("the request failed")


def message(answer) -> str | None:
    """The provider's own words about a failure: `{"error": {"message"}}` or `{"message"}`."""
    if not isinstance(answer, dict):
        return None
    error = answer.get("error")
    found = error.get("message") if isinstance(error, dict) else answer.get("message")
    return found[:MAX_MESSAGE] if isinstance(found, str) else None


def refund_state(answer: dict) -> RefundState:
    status = text(answer, "status")
    if status not in REFUND_STATES:
        raise Err(Unavailable(f"unknown refund status {json.dumps(status)}"))
    return REFUND_STATES[status]


def text(answer: dict, field: str) -> str:
    """A non-empty string field of an answer; its absence means the answer is
    not what the provider sends, so the call is worth asking again."""
    value = answer.get(field)
    if not isinstance(value, str) or not value:
        raise Err(Unavailable(f"the answer has no `{field}`"))
    return value


def required(value: str | None, what: str) -> str:
    if not value:
        raise Err(Misconfigured(f"{what} is not set"))
    return value


def segment(reference: str) -> str:
    if not PLAIN_ID.fullmatch(reference):
        raise Err(InvalidRequest(f"reference {json.dumps(reference)} is not a provider id"))
    return reference
