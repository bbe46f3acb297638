// paygate provider adapter for the sandbox provider's payment-link API, in
// JavaScript.
//
// The same adapter as the Rust `plugins/sandbox-adapter`, answering to the
// `paypal` alias, built against WIT `paygate:plugins@0.2.0`:
// `POST {base-url}/payment-links` opens a payment and
// `GET {base-url}/payment-links/{id}` reads its state;
// `POST {base-url}/payment-links/{id}/refunds` gives money back and
// `GET {base-url}/refunds/{id}` reads a refund's state. Failures map to the
// WIT `provider-error` cases exactly as the Rust adapter maps them.
//
// Setting: `base-url` (required). No secrets.
//
// WIT in JavaScript: records are objects with camelCase fields, u64 is a
// BigInt, list<u8> a Uint8Array, enums are their case names, variants are
// `{ tag, val }`. An exported function returns its `ok` value and throws its
// `err` value; an imported one throws an error whose `payload` is the `err`.

import { get } from 'paygate:plugins/config@0.1.0';
import { send } from 'paygate:plugins/http@0.1.0';

/** Longest provider message passed on, so an error page cannot bloat logs. */
const MAX_MESSAGE = 300;

const STATES = new Set(['pending', 'finished', 'failed']);
const REFUND_STATES = new Set(['pending', 'succeeded', 'failed']);

/** The exported `provider` interface. */
export const provider = {
  createPayment(request) {
    const response = call('post', join(baseUrl(), 'payment-links'), {
      headers: [
        ['Idempotency-Key', request.idempotencyKey],
        ['Content-Type', 'application/json'],
      ],
      body: linkBody(request),
    });
    const link = successObject(response);
    // The id may come back as a string or a number.
    const reference = typeof link.id === 'number' ? String(link.id) : link.id;
    if (typeof reference !== 'string' || reference === '') {
      throw malformed('missing field `id`');
    }
    return { reference, paymentUrl: requiredString(link, 'payment_url') };
  },

  paymentStatus(reference) {
    const base = baseUrl();
    const link = successObject(call('get', join(base, itemPath('payment-links', reference))));
    return known(STATES, requiredString(link, 'status'), 'status');
  },

  refund(request) {
    const base = baseUrl();
    const path = `${itemPath('payment-links', request.paymentReference)}/refunds`;
    const response = call('post', join(base, path), {
      headers: [
        ['Idempotency-Key', request.idempotencyKey],
        ['Content-Type', 'application/json'],
      ],
      body: refundBody(request),
    });
    return parseRefund(successObject(response));
  },

  refundStatus(reference) {
    const base = baseUrl();
    return parseRefund(successObject(call('get', join(base, itemPath('refunds', reference))))).state;
  },
};

function baseUrl() {
  const url = get('base-url');
  if (!url) {
    throw failure('misconfigured', 'setting `base-url` is not set');
  }
  return url;
}

/** Joins a configured base URL and a path without doubling the slash. */
function join(base, path) {
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

/** `{collection}/{reference}` with the reference as one path segment. An
 * empty reference would address the whole collection, whose listing would
 * then be misread as one item. */
function itemPath(collection, reference) {
  if (reference === '') {
    throw failure('invalid-request', 'empty provider reference');
  }
  return `${collection}/${pathSegment(reference)}`;
}

/** The WIT state of a provider status; an unknown one is malformed. */
function known(states, status, what) {
  if (!states.has(status)) {
    throw malformed(`unknown ${what} ${JSON.stringify(status)}`);
  }
  return status;
}

function parseRefund(object) {
  const state = known(REFUND_STATES, requiredString(object, 'status'), 'refund status');
  return { reference: requiredString(object, 'id'), state };
}

/** Encodes one path segment, so a provider reference cannot add `/`, `?` or
 * `#`. Only letters, digits and `-._~` pass, as in the other adapters. */
function pathSegment(text) {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The JSON body of `POST /payment-links`. Amount and price stay decimal
 * strings so no precision is lost; the ids are u64, written out digit for
 * digit because a JSON number in JavaScript would round past 2^53. */
function linkBody(request) {
  const fields = [
    ['payment_id', request.paymentId.toString()],
    ['merchant_id', request.merchantId.toString()],
    ['order_id', request.orderId.toString()],
    ['amount', JSON.stringify(request.amount)],
    ['price', JSON.stringify(request.price)],
    ['currency', JSON.stringify(request.currency)],
    ['idempotency_key', JSON.stringify(request.idempotencyKey)],
    ['return_url', JSON.stringify(request.returnUrl ?? null)],
    ['cancel_url', JSON.stringify(request.cancelUrl ?? null)],
    ['metadata', JSON.stringify(Object.fromEntries(request.metadata))],
  ];
  return jsonObject(fields);
}

/** The WIT refund reasons as the provider spells them. */
const REASONS = {
  'requested-by-customer': 'requested_by_customer',
  duplicate: 'duplicate',
  fraudulent: 'fraudulent',
};

/** The JSON body of `POST /payment-links/{id}/refunds`, the ids written out
 * digit for digit as in `linkBody`. */
function refundBody(request) {
  return jsonObject([
    ['refund_id', request.refundId.toString()],
    ['payment_id', request.paymentId.toString()],
    ['price', JSON.stringify(request.price)],
    ['currency', JSON.stringify(request.currency)],
    ['reason', JSON.stringify(REASONS[request.reason] ?? null)],
    ['metadata', JSON.stringify(Object.fromEntries(request.metadata))],
  ]);
}

/** UTF-8 JSON of an object from [name, already-encoded value] pairs. */
function jsonObject(fields) {
  const json = `{${fields.map(([name, value]) => `"${name}":${value}`).join(',')}}`;
  return new TextEncoder().encode(json);
}

/** Sends through the host; a refused or failed request becomes the provider
 * error an operator or a retry can act on. */
function call(method, url, { headers = [], body = new Uint8Array() } = {}) {
  try {
    return send({ method, url, headers, body, timeoutMs: undefined });
  } catch (error) {
    const { tag, val } = error.payload ?? {};
    switch (tag) {
      case 'denied':
        throw failure('misconfigured', `host ${val} is not on the allow-list`);
      case 'invalid-request':
        throw failure('misconfigured', `unusable request: ${val}`);
      case 'timeout':
        throw failure('unavailable', 'provider timed out');
      case 'too-large':
        throw failure('unavailable', 'provider response too large');
      case 'transport':
        throw failure('unavailable', `transport error: ${val}`);
      default:
        throw error;
    }
  }
}

/** The JSON object of a 2xx answer; any other status is classified. */
function successObject({ status, body }) {
  if (status < 200 || status >= 300) {
    throw classifyStatus(status, body);
  }
  let parsed;
  try {
    parsed = parseJson(body);
  } catch (error) {
    throw malformed(`body is not JSON (${error.message})`);
  }
  if (!isObject(parsed)) {
    throw malformed('body is not a JSON object');
  }
  return parsed;
}

function requiredString(object, field) {
  const value = object[field];
  if (typeof value !== 'string' || value === '') {
    throw malformed(`missing string field \`${field}\``);
  }
  return value;
}

/** A 2xx answer the adapter cannot use: the provider may have changed or a
 * proxy interfered, which is worth retrying rather than blaming the merchant. */
function malformed(what) {
  return failure('unavailable', `malformed provider response: ${what}`);
}

/** Credentials problems (401/403) are the operator's to fix; 429 and 5xx are
 * transient; 402 or a `card_error` refuses this payment; any other 4xx
 * blames the request. */
function classifyStatus(status, body) {
  const { message, kind } = errorDetail(body);
  const summary = message === undefined ? `HTTP ${status}` : `HTTP ${status}: ${message}`;
  const refusal = message ?? `provider answered HTTP ${status}`;
  if (status === 401 || status === 403) {
    return failure('misconfigured', `provider refused the credentials (${summary})`);
  }
  if (status === 402) {
    return failure('declined', refusal);
  }
  if (status === 429) {
    return failure('unavailable', `provider rate limit (${summary})`);
  }
  if (status >= 400 && status < 500) {
    return failure(kind === 'card_error' ? 'declined' : 'invalid-request', refusal);
  }
  return failure('unavailable', `provider unavailable (${summary})`);
}

/** Message and type of `{"error": {"message", "type"}}`, `{"error": "..."}`
 * or `{"message": "..."}`; anything else yields nothing. */
function errorDetail(body) {
  let parsed;
  try {
    parsed = parseJson(body);
  } catch {
    return {};
  }
  if (!isObject(parsed)) {
    return {};
  }
  const { error } = parsed;
  if (typeof error === 'string') {
    return { message: truncate(error) };
  }
  if (isObject(error)) {
    return { message: text(error.message), kind: text(error.type) };
  }
  return { message: text(parsed.message) };
}

/** Parses UTF-8 JSON; invalid UTF-8 is an error, not replaced characters. */
function parseJson(bytes) {
  return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
}

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value) {
  return typeof value === 'string' ? truncate(value) : undefined;
}

/** Cuts after MAX_MESSAGE characters (code points, not UTF-16 units). */
function truncate(message) {
  const chars = Array.from(message);
  return chars.length > MAX_MESSAGE ? `${chars.slice(0, MAX_MESSAGE).join('')}...` : message;
}

function failure(tag, val) {
  return { tag, val };
}
