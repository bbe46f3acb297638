# syntax=docker/dockerfile:1
# The paygate host and its plugins; the runtime image holds both. The build
# stage runs docker/build-image-steps, which CI also runs outside Docker.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# The toolchain rust-toolchain.toml pins, in a layer that outlives source changes.
COPY rust-toolchain.toml .
RUN rustup toolchain install && rustup target add wasm32-wasip2
COPY . .
# Downloaded crates and compiled dependencies stay in cache mounts between
# builds. The target directory is one of them, so the binaries are copied
# out of it (to /out) in this same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CARGO_TARGET_DIR=/src/target docker/build-image-steps /out

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
# paygate runs as its own user, which owns only /var/lib/paygate: the plugin
# directory, the compile cache and the cache's key (beside it, cache.key).
RUN groupadd --system --gid 10001 paygate \
 && useradd --system --uid 10001 --gid paygate --home-dir /var/lib/paygate \
      --no-create-home --shell /usr/sbin/nologin paygate
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/share/paygate/plugins/ /usr/share/paygate/plugins/
# The demo's plugins (docker-compose.yml runs the demo); production mounts
# its own plugin directory over /var/lib/paygate/plugins.
RUN mkdir -p /var/lib/paygate/plugins /var/lib/paygate/cache \
 && cp /usr/share/paygate/plugins/* /var/lib/paygate/plugins/ \
 && chown -R paygate:paygate /var/lib/paygate
ENV PAYGATE_PLUGIN_DIR=/var/lib/paygate/plugins \
    PAYGATE_PLUGIN_CACHE_DIR=/var/lib/paygate/cache
WORKDIR /var/lib/paygate
# By number (paygate's uid and gid), so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080
# /livez answers while the process serves and asks no backend, so an outage
# of PostgreSQL, Redis or RabbitMQ does not mark the container unhealthy.
# The port is PAYGATE_LISTEN's default.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/livez || exit 1
ENTRYPOINT ["paygate"]
