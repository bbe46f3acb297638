// {{name}}: a paygate rate-limit policy (world `rate-limit-policy`), made by
// `paygate plugin new`.
//
// A fixed window per API key, or per client IP for requests without one: at
// most `limit` requests (setting, default 100) in each window of `window-ms`
// milliseconds (setting, default 1000). The counters live in Redis, shared
// by every host replica. When they cannot be reached the request is
// allowed, unless the setting `fail-open` is `false`.
//
// WIT in JavaScript: u64 and s64 are BigInts, u32 a Number, an `option` is
// the value or `undefined`; an imported function throws an error whose
// `payload` is its `err`.

import { get } from 'paygate:plugins/config@0.1.0';
import { increment } from 'paygate:plugins/counters@0.3.0';
import { write } from 'paygate:plugins/log@0.1.0';

const U32_MAX = 2 ** 32 - 1;

/** The exported `policy` interface. */
export const policy = {
  decide(request) {
    const limit = Math.min(Math.max(setting('limit', 100), 1), U32_MAX);
    const windowMs = Math.max(setting('window-ms', 1000), 1);
    const key = request.keyId !== undefined ? `key:${request.keyId}` : `ip:${request.clientIp}`;
    let window;
    try {
      window = increment(key, 1n, BigInt(windowMs));
    } catch (error) {
      const allowed = get('fail-open') !== 'false';
      write('warn', `counters unavailable: ${JSON.stringify(error.payload ?? String(error))}`);
      return {
        allowed,
        limit,
        remaining: 0,
        resetMs: BigInt(windowMs),
        retryAfterMs: allowed ? undefined : BigInt(windowMs),
      };
    }
    const used = window.value > 0n ? window.value : 0n;
    const allowed = used <= BigInt(limit);
    const remaining = allowed ? limit - Number(used) : 0;
    return {
      allowed,
      limit,
      remaining,
      resetMs: window.resetMs,
      retryAfterMs: allowed ? undefined : window.resetMs > 0n ? window.resetMs : 1n,
    };
  },
};

/** A numeric setting, or `fallback` when it is absent or not a whole number. */
function setting(key, fallback) {
  const value = Number((get(key) ?? '').trim());
  return Number.isSafeInteger(value) && (get(key) ?? '').trim() !== '' ? value : fallback;
}
