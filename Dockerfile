# syntax=docker/dockerfile:1.7
#
# One image with tasktrail's three binaries: command-api, query-api and projector.
# docker-compose.yml picks the process with `command:`; by hand:
#
#   docker build -t tasktrail .
#   docker run --rm tasktrail command-api migrate        # apply the migrations and exit
#   docker run --rm -p 127.0.0.1:8081:8081 tasktrail     # command-api (the default)
#   docker run --rm tasktrail projector run
#
# Stages: chef (toolchain + cargo-chef) → planner (dependency recipe) → builder (dependencies
# cooked in their own cached layer, then the workspace) → runtime (debian slim, non-root).

# Keep RUST_VERSION equal to `channel` in rust-toolchain.toml: the planner stage checks it.
ARG RUST_VERSION=1.95.0
ARG RUNTIME_IMAGE=debian:12.11-slim

FROM rust:${RUST_VERSION}-bookworm AS chef
ARG RUST_VERSION
ARG CARGO_CHEF_VERSION=0.1.78
# rdkafka-sys builds librdkafka from source with its ./configure and make (default features:
# libz only, no cmake, no OpenSSL, no SASL); libz-sys links the system zlib through pkg-config.
# The rust image ships most of these already; they are listed so the build does not depend on it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc g++ make pkg-config zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
# Use the image's toolchain as is: rust-toolchain.toml also lists rustfmt and clippy, which a
# release build does not need and rustup would otherwise download on every source change.
ENV RUSTUP_TOOLCHAIN=${RUST_VERSION} \
    CARGO_TERM_COLOR=never \
    SQLX_OFFLINE=true
WORKDIR /app

FROM chef AS planner
COPY . .
RUN grep -Eq "^channel *= *\"${RUSTUP_TOOLCHAIN}\"" rust-toolchain.toml \
    || { echo "rust-toolchain.toml pins another toolchain than the Dockerfile (RUST_VERSION=${RUSTUP_TOOLCHAIN}): change both" >&2; exit 1; }
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# The same packages in both steps, so the dependencies are resolved with the same features and
# the cooked layer is reused: it is rebuilt only when Cargo.toml / Cargo.lock change.
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
    -p tasktrail-command-api -p tasktrail-query-api -p tasktrail-projector
COPY . .
RUN cargo build --release --locked \
    -p tasktrail-command-api -p tasktrail-query-api -p tasktrail-projector

FROM ${RUNTIME_IMAGE} AS runtime
LABEL org.opencontainers.image.title="tasktrail" \
      org.opencontainers.image.description="tasktrail: command-api, query-api and projector" \
      org.opencontainers.image.licenses="Apache-2.0"
# ca-certificates: TLS to managed PostgreSQL / MongoDB / Kafka. No curl: the health check below
# needs only bash, which the base image has.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 tasktrail \
    && useradd --system --uid 10001 --gid tasktrail --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin tasktrail
COPY --from=builder \
    /app/target/release/command-api \
    /app/target/release/query-api \
    /app/target/release/projector \
    /usr/local/bin/
# Fail the build, not the container start, if a shared library is missing from the runtime image.
RUN ! ldd /usr/local/bin/command-api /usr/local/bin/query-api /usr/local/bin/projector | grep 'not found'

# `tasktrail-healthcheck [PATH] [PORT]`: exits 0 only when http://127.0.0.1:PORT/PATH answers 200.
# PATH defaults to /readyz, PORT to $TASKTRAIL_HTTP__PORT. Plain bash (/dev/tcp), so no curl.
COPY --chmod=0755 <<"EOF" /usr/local/bin/tasktrail-healthcheck
#!/bin/bash
set -euo pipefail
path="${1:-/readyz}"
port="${2:-${TASKTRAIL_HTTP__PORT:?pass the port or set TASKTRAIL_HTTP__PORT}}"
exec 3<>"/dev/tcp/127.0.0.1/${port}"
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "${path}" "${port}" >&3
status=""
IFS= read -r -t 5 status <&3 || true
status="${status%$'\r'}"
case "${status}" in
    "HTTP/1."?" 200 "*) exit 0 ;;
    *) echo "GET ${path} on port ${port}: ${status:-no answer}" >&2; exit 1 ;;
esac
EOF

# In a container the services must listen on every interface (their default is 127.0.0.1).
ENV TASKTRAIL_HTTP__HOST=0.0.0.0 \
    TASKTRAIL_LOG__FORMAT=json
USER 10001:10001
# command-api, query-api, projector (health and metrics only)
EXPOSE 8081 8082 8083
CMD ["command-api"]
