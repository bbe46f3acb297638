"""{{name}}: a paygate rate-limit policy (world `rate-limit-policy`), made by
`paygate plugin new`.

A fixed window per API key, or per client IP for requests without one: at
most `limit` requests (setting, default 100) in each window of `window-ms`
milliseconds (setting, default 1000). The counters live in Redis, shared by
every host replica. When they cannot be reached the request is allowed,
unless the setting `fail-open` is `false`.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.policy import Decision, LimitRequest
from wit_world.imports import config, counters, log

U32_MAX = 2**32 - 1


class Policy(exports.Policy):
    """The exported `policy` interface."""

    def decide(self, request: LimitRequest) -> Decision:
        limit = min(max(setting("limit", 100), 1), U32_MAX)
        window_ms = max(setting("window-ms", 1000), 1)
        if request.key_id is not None:
            key = "key:" + request.key_id
        else:
            key = "ip:" + request.client_ip
        try:
            window = counters.increment(key, 1, window_ms)
        except Err as failed:
            allowed = config.get("fail-open") != "false"
            log.write(log.Level.WARN, f"counters unavailable: {failed.value}")
            return Decision(allowed, limit, 0, window_ms, None if allowed else window_ms)
        used = max(window.value, 0)
        allowed = used <= limit
        return Decision(
            allowed,
            limit,
            max(limit - used, 0),
            window.reset_ms,
            None if allowed else max(window.reset_ms, 1),
        )


def setting(key: str, default: int) -> int:
    """A numeric setting, or `default` when it is absent or not a number."""
    try:
        return int((config.get(key) or "").strip())
    except ValueError:
        return default
