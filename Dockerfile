# refundd's container image: built with the same `cargo build --release --locked`
# CI runs, shipped on a small Debian runtime as a non-root user, with a health
# check against the daemon's own /healthz (database reachable, scheduler alive).

FROM rust:1-bookworm AS build
WORKDIR /src
# The commit `refundd --version` names: the context has no Git history
# (docker build --build-arg REFUNDD_COMMIT=$(git rev-parse --short=12 HEAD)).
ARG REFUNDD_COMMIT=unknown
# The whole source tree (every target the manifest names must exist), minus
# what .dockerignore leaves out.
COPY . .
# The crates downloaded and the compiled dependencies are kept in BuildKit cache
# mounts between builds on one machine: a rebuild after a source change compiles
# refundd alone. The binary leaves the cache mount by a copy.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
 && cp target/release/refundd /usr/local/bin/refundd

FROM debian:bookworm-slim
# ca-certificates: TLS to the bank. curl: the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin refundd
COPY --from=build /usr/local/bin/refundd /usr/local/bin/refundd
USER refundd
ENV REFUNDD__LOG__FORMAT=json \
    REFUNDD__HTTP__LISTEN=0.0.0.0:9187
EXPOSE 9187
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9187/healthz || exit 1
ENTRYPOINT ["refundd"]
CMD ["run"]
