"""{{name}}: a paygate webhook verifier (WIT `paygate:plugins@0.2.0`, world
`webhook-verifier`), made by `paygate plugin new`.

The scheme it checks: `x-internal-signature` is the hex HMAC-SHA256 of the
raw body under the `webhook-secret` secret, and the body is
`{"payment_id": 42, "status": "finished" | "failed", "event_id": "..."}`
(`event_id` optional). That is the scheme the harness signs its built-in
cases with; change the header, the signed bytes and `parse` to your
provider's, then record a few of its real webhooks as fixtures (see the
README). If your provider signs a timestamp, refuse old ones with
`signature-expired`, using the `clock` import.
"""

import hashlib
import hmac
import json

# hmac imports `warnings` only when first used, and componentize-py bundles
# the modules imported while it builds: import it now, or `hmac.new` fails
# at run time with ModuleNotFoundError.
import warnings  # noqa: F401

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.verifier import (
    Event,
    Event_Payment,
    EventStatus,
    PaymentRef_PaymentId,
    VerifyError_InvalidSignature as InvalidSignature,
    VerifyError_Malformed as Malformed,
    VerifyError_Misconfigured as Misconfigured,
    WebhookEvent,
    WebhookRequest,
)
from wit_world.imports import config

# The header carrying the signature (names arrive lower-case).
SIGNATURE_HEADER = "x-internal-signature"

STATUSES = {"finished": EventStatus.FINISHED, "failed": EventStatus.FAILED}


class Verifier(exports.Verifier):
    """The exported `verifier` interface."""

    def verify(self, request: WebhookRequest) -> list[Event]:
        secret = config.secret("webhook-secret")
        if not secret:
            raise Err(Misconfigured("secret `webhook-secret` is not set"))
        signature = next(
            (value for name, value in request.headers if name == SIGNATURE_HEADER), None
        )
        if signature is None:
            raise Err(InvalidSignature(f"no {SIGNATURE_HEADER} header"))
        expected = hmac.new(secret.encode(), bytes(request.body), hashlib.sha256).hexdigest()
        # Constant time: the comparison must not tell how much of a guess was right.
        if not hmac.compare_digest(expected, signature.strip().lower()):
            raise Err(InvalidSignature("the signature does not match the body"))
        # Only now is the body trusted enough to read.
        return [parse(bytes(request.body))]


def parse(body: bytes) -> Event:
    """The one event of a verified body."""
    try:
        data = json.loads(body)
    except ValueError as error:
        raise Err(Malformed(f"the body is not JSON ({error})")) from None
    if not isinstance(data, dict):
        raise Err(Malformed("the body is not a JSON object"))
    payment_id = data.get("payment_id")
    if not isinstance(payment_id, int) or isinstance(payment_id, bool) or payment_id < 0:
        raise Err(Malformed("no numeric `payment_id`"))
    status = data.get("status")
    if status not in STATUSES:
        raise Err(Malformed('`status` must be "finished" or "failed"'))
    # A replay must carry the same id, so paygate applies it once: the
    # provider's own id, else one derived from the body.
    event_id = data.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        event_id = "{{name}}_" + hashlib.sha256(body).hexdigest()[:32]
    # Say the amount when the provider's body has it: paygate then moves the
    # payment only if it is exactly the stored price and currency.
    return Event_Payment(
        WebhookEvent(
            event_id,
            PaymentRef_PaymentId(payment_id),
            STATUSES[status],
            f"{{name}}.{status}",
            None,
        )
    )
