// {{name}}: a paygate webhook verifier (WIT `paygate:plugins@0.2.0`, world
// `webhook-verifier`), made by `paygate plugin new`.
//
// The scheme it checks: `x-internal-signature` is the hex HMAC-SHA256 of
// the raw body under the `webhook-secret` secret, and the body is
// `{"payment_id": 42, "status": "finished" | "failed", "event_id": "..."}`
// (`event_id` optional). That is the scheme the harness signs its built-in
// cases with; change the header, the signed bytes and `parse` to your
// provider's, then record a few of its real webhooks as fixtures (see the
// README). If your provider signs a timestamp, refuse old ones with
// `signature-expired`, using the `clock` import.
//
// WIT in JavaScript: see the comment at the top of a provider adapter made
// by `paygate plugin new --world provider-adapter --lang js`.

import { secret } from 'paygate:plugins/config@0.1.0';

/** The header carrying the signature (names arrive lower-case). */
const SIGNATURE_HEADER = 'x-internal-signature';

const STATUSES = new Set(['finished', 'failed']);

/** The exported `verifier` interface. */
export const verifier = {
  verify(request) {
    const key = secret('webhook-secret');
    if (!key) throw failure('misconfigured', 'secret `webhook-secret` is not set');
    const header = request.headers.find(([name]) => name === SIGNATURE_HEADER);
    if (header === undefined) throw failure('invalid-signature', `no ${SIGNATURE_HEADER} header`);
    const expected = hex(hmacSha256(new TextEncoder().encode(key), request.body));
    // Constant time: the comparison must not tell how much of a guess was right.
    if (!sameText(expected, header[1].trim().toLowerCase())) {
      throw failure('invalid-signature', 'the signature does not match the body');
    }
    // Only now is the body trusted enough to read.
    return [parse(request.body)];
  },
};

/** The one event of a verified body. */
function parse(body) {
  let data;
  try {
    data = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch (error) {
    throw failure('malformed', `the body is not JSON (${error.message})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw failure('malformed', 'the body is not a JSON object');
  }
  const paymentId = data.payment_id;
  if (!Number.isSafeInteger(paymentId) || paymentId < 0) {
    throw failure('malformed', 'no numeric `payment_id`');
  }
  if (!STATUSES.has(data.status)) {
    throw failure('malformed', '`status` must be "finished" or "failed"');
  }
  // A replay must carry the same id, so paygate applies it once: the
  // provider's own id, else one derived from the body.
  let eventId = data.event_id;
  if (typeof eventId !== 'string' || eventId === '' || eventId.length > 255) {
    eventId = `{{name}}_${hex(sha256(body)).slice(0, 32)}`;
  }
  return {
    tag: 'payment',
    val: {
      eventId,
      payment: { tag: 'payment-id', val: BigInt(paymentId) },
      status: data.status,
      providerType: `{{name}}.${data.status}`,
      // Say the amount when the provider's body has it: paygate then moves
      // the payment only if it is exactly the stored price and currency.
      amount: undefined,
    },
  };
}

/** Equal strings, compared without stopping at the first difference. */
function sameText(a, b) {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) {
    difference |= a.charCodeAt(i) ^ (i < b.length ? b.charCodeAt(i) : 0);
  }
  return difference === 0;
}

function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function failure(tag, val) {
  return { tag, val };
}

// HMAC-SHA256 (RFC 2104, FIPS 180-4), synchronous: the engine's
// crypto.subtle answers with promises, which a WIT export cannot await.

/** The first 32 bits of the fractional parts of the `power`th roots of the first `count` primes. */
function rootBits(count, power) {
  const out = new Uint32Array(count);
  for (let n = 2, found = 0; found < count; n++) {
    let prime = true;
    for (let d = 2; d * d <= n; d++) if (n % d === 0) prime = false;
    if (!prime) continue;
    const root = n ** (1 / power);
    out[found++] = (root - Math.floor(root)) * 2 ** 32;
  }
  return out;
}

const K = rootBits(64, 3);
const H0 = rootBits(8, 2);

function sha256(message) {
  const bitLength = message.length * 8;
  const padded = new Uint8Array((((message.length + 8) >> 6) + 1) * 64);
  padded.set(message);
  padded[message.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bitLength / 2 ** 32));
  view.setUint32(padded.length - 4, bitLength >>> 0);
  const h = H0.slice();
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let block = 0; block < padded.length; block += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(block + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
      const t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
      hh = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
  const digest = new Uint8Array(32);
  const out = new DataView(digest.buffer);
  h.forEach((word, i) => out.setUint32(i * 4, word));
  return digest;
}

function hmacSha256(key, message) {
  const block = new Uint8Array(64);
  block.set(key.length > 64 ? sha256(key) : key);
  const inner = new Uint8Array(64 + message.length);
  const outer = new Uint8Array(64 + 32);
  for (let i = 0; i < 64; i++) {
    inner[i] = block[i] ^ 0x36;
    outer[i] = block[i] ^ 0x5c;
  }
  inner.set(message, 64);
  outer.set(sha256(inner), 64);
  return sha256(outer);
}
