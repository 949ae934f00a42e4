# syntax=docker/dockerfile:1

# Build stage: compiles the release binary. Swagger UI is vendored, so the
# build downloads nothing but crates.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin orgsvc \
    && cp target/release/orgsvc /usr/local/bin/orgsvc

# Runtime stage: a slim image running as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/orgsvc --create-home orgsvc
COPY --from=build /usr/local/bin/orgsvc /usr/local/bin/orgsvc
USER orgsvc
WORKDIR /var/lib/orgsvc
ENV ORGSVC__SERVER__HOST=0.0.0.0 \
    ORGSVC__SERVER__PORT=8080 \
    ORGSVC__STORE__PATH=/var/lib/orgsvc/orgsvc.db
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/orgsvc"]
CMD ["serve"]
