# syntax=docker/dockerfile:1
#
# One build, one small image per process:
#
#   docker build --target order -t choreo/order .
#
# Targets: order, inventory, payment, shipping, edge, provider (the payment
# provider stand-in) and choreo (the operator's tool: topics, schemas, dlq,
# replay, audit, token; with the saga services' binaries, which replay runs).
# compose/docker-compose.yml builds them all.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
# librdkafka is compiled by rdkafka-sys (its configure script wants make and
# a C++ compiler); TLS to Kafka, PostgreSQL and https endpoints links the
# system's OpenSSL, which the rust image carries with its headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# No fail points: only the builds that ask for them (`make build`) have them.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p choreo-order -p choreo-inventory -p choreo-payment -p choreo-shipping \
        -p choreo-edge -p choreo-provider -p choreo-cli \
    && mkdir -p /out \
    && cp target/release/choreo target/release/choreo-order target/release/choreo-inventory \
        target/release/choreo-payment target/release/choreo-shipping target/release/choreo-edge \
        target/release/choreo-provider /out/

# What every process runs on: glibc, OpenSSL, the CA roots, and curl for
# compose's health checks. No compiler, no package cache, no root.
FROM debian:${DEBIAN}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin choreo
USER 10001:10001
# Containers listen on every interface; the port is the service's own.
ENV CHOREO_LOG_FORMAT=json
STOPSIGNAL SIGTERM

FROM runtime AS order
COPY --from=build /out/choreo-order /usr/local/bin/
ENV CHOREO_HTTP_ADDR=0.0.0.0:8082
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/choreo-order"]

FROM runtime AS inventory
COPY --from=build /out/choreo-inventory /usr/local/bin/
ENV CHOREO_HTTP_ADDR=0.0.0.0:8083
EXPOSE 8083
ENTRYPOINT ["/usr/local/bin/choreo-inventory"]

FROM runtime AS payment
COPY --from=build /out/choreo-payment /usr/local/bin/
ENV CHOREO_HTTP_ADDR=0.0.0.0:8084
EXPOSE 8084
ENTRYPOINT ["/usr/local/bin/choreo-payment"]

FROM runtime AS shipping
COPY --from=build /out/choreo-shipping /usr/local/bin/
ENV CHOREO_HTTP_ADDR=0.0.0.0:8085
EXPOSE 8085
ENTRYPOINT ["/usr/local/bin/choreo-shipping"]

FROM runtime AS edge
COPY --from=build /out/choreo-edge /usr/local/bin/
ENV CHOREO_HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/choreo-edge"]

FROM runtime AS provider
COPY --from=build /out/choreo-provider /usr/local/bin/
ENV CHOREO_HTTP_ADDR=0.0.0.0:8086
EXPOSE 8086
ENTRYPOINT ["/usr/local/bin/choreo-provider"]

# Last, so that a plain `docker build .` gives the tool.
FROM runtime AS choreo
# `choreo replay` and `choreo rebuild` run the saga service's own binary.
COPY --from=build /out/choreo /out/choreo-order /out/choreo-inventory /out/choreo-payment \
    /out/choreo-shipping /usr/local/bin/
ENV CHOREO_LOG_FORMAT=text
ENTRYPOINT ["/usr/local/bin/choreo"]
