# syntax=docker/dockerfile:1
# ktable image: `docker compose up --build` uses it (see docker-compose.yml).

# --- build ---------------------------------------------------------------
# The full (non-slim) Rust image ships gcc, make, perl and zlib headers,
# which rdkafka needs to build the bundled librdkafka.
FROM rust:1-bookworm AS build
WORKDIR /src
# Copy only what cargo reads (.dockerignore keeps target/ out as well).
# (Cargo.lock* so a checkout without a lockfile still builds.)
COPY Cargo.toml Cargo.lock* ./
COPY src src
COPY benches benches
COPY tests tests
COPY examples examples
# Cache mounts keep the registry and target dir between builds; target/ is
# a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --bin ktable \
    && cp target/release/ktable /usr/local/bin/ktable

# --- runtime -------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/ktable /usr/local/bin/ktable
COPY sql /app/sql
COPY docker/ktable.toml /etc/ktable/ktable.toml
WORKDIR /app
# No need for root to serve queries.
RUN useradd --system --no-create-home ktable
USER ktable
ENTRYPOINT ["ktable"]
# Brokers, users and the listen address come from the config (docker/ktable.toml).
EXPOSE 5433
CMD ["serve", "--config", "/etc/ktable/ktable.toml"]
