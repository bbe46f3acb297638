// {{name}}: a paygate provider adapter (WIT `paygate:plugins@0.2.0`, world
// `provider-adapter`), made by `paygate plugin new`.
//
// It speaks a small JSON API under the `base-url` setting; change the paths
// and field names in the four methods to your provider's:
// - `POST payments` opens a payment: `{"id", "url"}` back;
// - `GET payments/{id}` reads it: `{"status"}`;
// - `POST refunds` gives money back: `{"id", "status"}`;
// - `GET refunds/{id}` reads a refund: `{"status"}`.
//
// Setting: `base-url` (required). Secret: `secret-key` (required), sent as
// a bearer token. Every failure is one of the WIT's `provider-error` cases,
// which decide what paygate does next (`unavailable` is retried later and
// counts against the provider's circuit breaker; the others are final).
//
// WIT in JavaScript (componentize-js): records are objects with camelCase
// fields, u64 is a BigInt, list<u8> a Uint8Array, enums are their case
// names, variants are `{ tag, val }`. An exported function returns its `ok`
// value and throws its `err`; an imported one throws an error whose
// `payload` is the `err`.

import { get, secret } from 'paygate:plugins/config@0.1.0';
import { send } from 'paygate:plugins/http@0.1.0';

/** The longest provider message passed on, so an error page cannot bloat logs. */
const MAX_MESSAGE = 200;

/** A provider id as one path segment: anything else must not reach another path. */
const PLAIN_ID = /^[A-Za-z0-9_-]{1,255}$/;

const PAYMENT_STATES = {
  succeeded: 'finished',
  paid: 'finished',
  finished: 'finished',
  failed: 'failed',
  canceled: 'failed',
  expired: 'failed',
};

const REFUND_STATES = {
  succeeded: 'succeeded',
  pending: 'pending',
  processing: 'pending',
  failed: 'failed',
  canceled: 'failed',
};

const REASONS = {
  'requested-by-customer': 'requested_by_customer',
  duplicate: 'duplicate',
  fraudulent: 'fraudulent',
};

/** The exported `provider` interface. */
export const provider = {
  createPayment(request) {
    const answer = call('post', 'payments', request.idempotencyKey, {
      reference: request.paymentId.toString(),
      order: request.orderId.toString(),
      amount: request.price,
      currency: request.currency,
      success_url: request.returnUrl ?? null,
      cancel_url: request.cancelUrl ?? null,
      metadata: Object.fromEntries(request.metadata),
    });
    return { reference: text(answer, 'id'), paymentUrl: text(answer, 'url') };
  },

  paymentStatus(reference) {
    const answer = call('get', `payments/${segment(reference)}`);
    return PAYMENT_STATES[text(answer, 'status')] ?? 'pending';
  },

  refund(request) {
    const metadata = Object.fromEntries(request.metadata);
    // The provider's refund webhooks can then name paygate's refund.
    metadata.paygate_refund_id = request.refundId.toString();
    const answer = call('post', 'refunds', request.idempotencyKey, {
      payment: request.paymentReference,
      amount: request.price,
      currency: request.currency,
      reason: REASONS[request.reason] ?? null,
      metadata,
    });
    return { reference: text(answer, 'id'), state: refundState(answer) };
  },

  refundStatus(reference) {
    return refundState(call('get', `refunds/${segment(reference)}`));
  },
};

/** Sends one request under `base-url` and returns its JSON object, or
 * throws the `provider-error` its failure means. A body comes with its
 * idempotency key. */
function call(method, path, idempotencyKey, body) {
  // Checked before anything is sent: without them no request can be right.
  const baseUrl = required(get('base-url'), 'setting `base-url`');
  const key = required(secret('secret-key'), 'secret `secret-key`');
  const headers = [
    ['Authorization', `Bearer ${key}`],
    ['Accept', 'application/json'],
  ];
  let bytes = new Uint8Array();
  if (body !== undefined) {
    headers.push(['Idempotency-Key', idempotencyKey], ['Content-Type', 'application/json']);
    bytes = new TextEncoder().encode(JSON.stringify(body));
  }
  let response;
  try {
    response = send({
      method,
      url: `${baseUrl.replace(/\/+$/, '')}/${path}`,
      headers,
      body: bytes,
      timeoutMs: undefined,
    });
  } catch (error) {
    throw transportError(error.payload ?? {});
  }
  const answer = parseJson(response.body);
  if (response.status >= 200 && response.status < 300) {
    if (!isObject(answer)) {
      throw failure('unavailable', `HTTP ${response.status} whose body is not a JSON object`);
    }
    return answer;
  }
  throw statusError(response.status, message(answer));
}

/** What an HTTP status means for the payment or refund. */
function statusError(status, text) {
  const why = text ?? `HTTP ${status}`;
  if (status === 402) return failure('declined', why);
  if (status === 401 || status === 403) return failure('misconfigured', `credentials refused: ${why}`);
  if (status === 408 || status === 429 || status >= 500) return failure('unavailable', why);
  if (status >= 400 && status < 500) return failure('invalid-request', why);
  return failure('unavailable', why);
}

/** What a failed send means: the host refused it, or the provider did not answer. */
function transportError({ tag, val }) {
  switch (tag) {
    case 'denied':
      return failure('misconfigured', `${val} is not among the plugin's allowed_hosts`);
    case 'invalid-request':
      return failure('misconfigured', `the request could not be sent: ${val}`);
    case 'timeout':
      return failure('unavailable', 'no answer in time');
    case 'too-large':
      return failure('unavailable', 'the answer is too large');
    default:
      return failure('unavailable', String(val ?? 'the request failed'));
  }
}

/** The provider's own words about a failure: `{"error": {"message"}}` or `{"message"}`. */
function message(answer) {
  if (!isObject(answer)) return undefined;
  const found = isObject(answer.error) ? answer.error.message : answer.message;
  return typeof found === 'string' ? Array.from(found).slice(0, MAX_MESSAGE).join('') : undefined;
}

function refundState(answer) {
  const status = text(answer, 'status');
  const state = REFUND_STATES[status];
  if (state === undefined) {
    throw failure('unavailable', `unknown refund status ${JSON.stringify(status)}`);
  }
  return state;
}

/** A non-empty string field of an answer; its absence means the answer is
 * not what the provider sends, so the call is worth asking again. */
function text(answer, field) {
  const value = answer[field];
  if (typeof value !== 'string' || value === '') {
    throw failure('unavailable', `the answer has no \`${field}\``);
  }
  return value;
}

function required(value, what) {
  if (!value) throw failure('misconfigured', `${what} is not set`);
  return value;
}

function segment(reference) {
  if (!PLAIN_ID.test(reference)) {
    throw failure('invalid-request', `reference ${JSON.stringify(reference)} is not a provider id`);
  }
  return reference;
}

/** Parses UTF-8 JSON; anything else is `undefined`. */
function parseJson(bytes) {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return undefined;
  }
}

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function failure(tag, val) {
  return { tag, val };
}
