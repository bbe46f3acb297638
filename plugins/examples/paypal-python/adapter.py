"""paygate provider adapter for the sandbox provider's payment-link API, in Python.

The same adapter as the Rust `plugins/sandbox-adapter`, answering to the
`paypal` alias, built against WIT `paygate:plugins@0.2.0`:
`POST {base-url}/payment-links` opens a payment and
`GET {base-url}/payment-links/{id}` reads its state;
`POST {base-url}/payment-links/{id}/refunds` gives money back and
`GET {base-url}/refunds/{id}` reads a refund's state. Failures map to the WIT
`provider-error` cases exactly as the Rust adapter maps them.

Setting: `base-url` (required). No secrets.

WIT in Python (bindings by componentize-py): records are dataclasses with
snake_case fields, enums are `Enum`s, each variant case is its own dataclass.
An exported function returns its `ok` value and raises `Err(value)` for its
`err`; an imported one raises `Err` the same way.
"""

import json
from urllib.parse import quote

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

# Longest provider message passed on, so an error page cannot bloat logs.
MAX_MESSAGE = 300

STATES = {
    "pending": PaymentState.PENDING,
    "finished": PaymentState.FINISHED,
    "failed": PaymentState.FAILED,
}

REFUND_STATES = {
    "pending": RefundState.PENDING,
    "succeeded": RefundState.SUCCEEDED,
    "failed": RefundState.FAILED,
}

REASONS = {
    RefundReason.REQUESTED_BY_CUSTOMER: "requested_by_customer",
    RefundReason.DUPLICATE: "duplicate",
    RefundReason.FRAUDULENT: "fraudulent",
}


class Provider(exports.Provider):
    """The exported `provider` interface."""

    def create_payment(self, request: PaymentRequest) -> PaymentSession:
        response = send(
            http.Method.POST,
            join(base_url(), "payment-links"),
            headers=[
                ("Idempotency-Key", request.idempotency_key),
                ("Content-Type", "application/json"),
            ],
            body=link_body(request),
        )
        link = success_object(response)
        reference = link.get("id")
        # The id may come back as a string or a number.
        if isinstance(reference, (int, float)) and not isinstance(reference, bool):
            reference = str(reference)
        if not isinstance(reference, str) or not reference:
            raise malformed("missing field `id`")
        return PaymentSession(reference, required_str(link, "payment_url"))

    def payment_status(self, reference: str) -> PaymentState:
        base = base_url()
        path = item_path("payment-links", reference)
        link = success_object(send(http.Method.GET, join(base, path)))
        return known(STATES, required_str(link, "status"), "status")

    def refund(self, request: RefundRequest) -> RefundSession:
        base = base_url()
        path = item_path("payment-links", request.payment_reference) + "/refunds"
        response = send(
            http.Method.POST,
            join(base, path),
            headers=[
                ("Idempotency-Key", request.idempotency_key),
                ("Content-Type", "application/json"),
            ],
            body=refund_body(request),
        )
        return parse_refund(success_object(response))

    def refund_status(self, reference: str) -> RefundState:
        base = base_url()
        path = item_path("refunds", reference)
        return parse_refund(success_object(send(http.Method.GET, join(base, path)))).state


def base_url() -> str:
    url = config.get("base-url")
    if not url:
        raise Err(Misconfigured("setting `base-url` is not set"))
    return url


def join(base: str, path: str) -> str:
    """Joins a configured base URL and a path without doubling the slash."""
    return base.rstrip("/") + "/" + path.lstrip("/")


def item_path(collection: str, reference: str) -> str:
    """`{collection}/{reference}` with the reference as one path segment.
    An empty reference would address the whole collection, whose listing
    would then be misread as one item."""
    if not reference:
        raise Err(InvalidRequest("empty provider reference"))
    return collection + "/" + quote(reference, safe="")


def known(states: dict, status: str, what: str):
    """The WIT state of a provider status; an unknown one is malformed."""
    if status not in states:
        raise malformed(f"unknown {what} {json.dumps(status, ensure_ascii=False)}")
    return states[status]


def parse_refund(body: dict) -> RefundSession:
    state = known(REFUND_STATES, required_str(body, "status"), "refund status")
    return RefundSession(required_str(body, "id"), state)


def link_body(request: PaymentRequest) -> bytes:
    """The JSON body of `POST /payment-links`. Amount and price stay decimal
    strings so no precision is lost on the way."""
    return json.dumps(
        {
            "payment_id": request.payment_id,
            "merchant_id": request.merchant_id,
            "order_id": request.order_id,
            "amount": request.amount,
            "price": request.price,
            "currency": request.currency,
            "idempotency_key": request.idempotency_key,
            "return_url": request.return_url,
            "cancel_url": request.cancel_url,
            "metadata": dict(request.metadata),
        },
        separators=(",", ":"),
    ).encode()


def refund_body(request: RefundRequest) -> bytes:
    """The JSON body of `POST /payment-links/{id}/refunds`."""
    return json.dumps(
        {
            "refund_id": request.refund_id,
            "payment_id": request.payment_id,
            "price": request.price,
            "currency": request.currency,
            "reason": None if request.reason is None else REASONS[request.reason],
            "metadata": dict(request.metadata),
        },
        separators=(",", ":"),
    ).encode()


def send(method: http.Method, url: str, headers=(), body=b"") -> http.Response:
    """Sends through the host; a refused or failed request becomes the
    provider error an operator or a retry can act on."""
    try:
        return http.send(http.Request(method, url, list(headers), body, None))
    except Err as failed:
        match failed.value:
            case http.HttpError_Denied(host):
                problem = Misconfigured(f"host {host} is not on the allow-list")
            case http.HttpError_InvalidRequest(message):
                problem = Misconfigured(f"unusable request: {message}")
            case http.HttpError_Timeout():
                problem = Unavailable("provider timed out")
            case http.HttpError_TooLarge():
                problem = Unavailable("provider response too large")
            case http.HttpError_Transport(message):
                problem = Unavailable(f"transport error: {message}")
        raise Err(problem) from None


def success_object(response: http.Response) -> dict:
    """The JSON object of a 2xx answer; any other status is classified."""
    if not 200 <= response.status < 300:
        raise Err(classify_status(response.status, response.body))
    try:
        body = json.loads(response.body)
    except ValueError as error:
        raise malformed(f"body is not JSON ({error})") from None
    if not isinstance(body, dict):
        raise malformed("body is not a JSON object")
    return body


def required_str(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise malformed(f"missing string field `{field}`")
    return value


def malformed(what: str) -> Err:
    """A 2xx answer the adapter cannot use: the provider may have changed or
    a proxy interfered, which is worth retrying rather than blaming the
    merchant."""
    return Err(Unavailable(f"malformed provider response: {what}"))


def classify_status(status: int, body: bytes) -> ProviderError:
    """Credentials problems (401/403) are the operator's to fix; 429 and 5xx
    are transient; 402 or a `card_error` refuses this payment; any other 4xx
    blames the request."""
    message, kind = error_detail(body)
    summary = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if status in (401, 403):
        return Misconfigured(f"provider refused the credentials ({summary})")
    if status == 402:
        return Declined(message or f"provider answered HTTP {status}")
    if status == 429:
        return Unavailable(f"provider rate limit ({summary})")
    if 400 <= status < 500:
        case = Declined if kind == "card_error" else InvalidRequest
        return case(message or f"provider answered HTTP {status}")
    return Unavailable(f"provider unavailable ({summary})")


def error_detail(body: bytes) -> tuple[str | None, str | None]:
    """Message and type of `{"error": {"message", "type"}}`,
    `{"error": "..."}` or `{"message": "..."}`; anything else yields nothing."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(parsed, dict):
        return None, None
    error = parsed.get("error")
    if isinstance(error, str):
        return truncate(error), None
    if isinstance(error, dict):
        return text(error.get("message")), text(error.get("type"))
    return text(parsed.get("message")), None


def text(value) -> str | None:
    return truncate(value) if isinstance(value, str) else None


def truncate(message: str) -> str:
    return message[:MAX_MESSAGE] + "..." if len(message) > MAX_MESSAGE else message
