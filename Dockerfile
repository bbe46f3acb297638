# Builds the paygate host and its plugins; the runtime image holds both.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN rustup target add wasm32-wasip2 \
 && plugins/build.sh \
 && cargo build --release -p paygate -p paygate-demo

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/paygate /usr/local/bin/paygate
# The demo (docker-compose.yml runs it); production runs `paygate serve`.
COPY --from=build /src/target/release/paygate-demo /usr/local/bin/paygate-demo
COPY --from=build /src/plugins/dist /usr/share/paygate/plugins
COPY --from=build /src/plugins/demo /usr/share/paygate/plugins
ENV PAYGATE_PLUGIN_DIR=/var/lib/paygate/plugins
RUN mkdir -p /var/lib/paygate/plugins && cp /usr/share/paygate/plugins/* /var/lib/paygate/plugins/
EXPOSE 8080
ENTRYPOINT ["paygate"]
