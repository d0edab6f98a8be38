# outbox-relay container image.
#
#   docker build -t outbox-relay:0.1.0 .
#   docker run --rm -e OUTBOX_DATABASE_URL=postgres://… -p 9090:9090 outbox-relay:0.1.0          # run
#   docker run --rm -e OUTBOX_DATABASE_URL=postgres://… outbox-relay:0.1.0 migrate                # schema
#
# The Swift standard library and Foundation are linked statically
# (--static-swift-stdlib), so the runtime stage needs only libpq, libcurl and CA
# certificates, plus Swift's static backtracer for readable crash reports. The
# process runs as the numeric user 65532 and writes nothing to its root
# filesystem (the Helm chart mounts it read-only).

ARG SWIFT_IMAGE=swift:6.1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- build ------------------------------------------------------------------
FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libpq-dev libcurl4-openssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first: a change to the sources alone reuses this layer.
COPY Package.swift ./
RUN swift package resolve

# SwiftPM checks every declared target's folder, so Tests comes along; only the
# outbox-relay product is built. Sources/OutboxRelay/Migrations links to sql/.
COPY Sources ./Sources
COPY Tests ./Tests
COPY sql ./sql
RUN swift build -c release --product outbox-relay --static-swift-stdlib \
 && install -D -m 0755 "$(swift build -c release --show-bin-path)/outbox-relay" /out/usr/local/bin/outbox-relay \
 && install -D -m 0755 /usr/libexec/swift/linux/swift-backtrace-static /out/usr/local/libexec/swift-backtrace-static

# --- runtime ----------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="outbox-relay" \
      org.opencontainers.image.description="Transactional-outbox webhook relay over PostgreSQL" \
      org.opencontainers.image.version="${VERSION}"

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libpq5 libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 65532 outbox \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin outbox

COPY --from=build /out/usr/local/ /usr/local/
# The binary embeds the migrations; this copy is for DBAs who apply them with psql -f.
COPY sql/ /usr/share/outbox-relay/sql/

USER 65532:65532
ENV OUTBOX_ADMIN_LISTEN=0.0.0.0:9090 \
    OUTBOX_LOG_FORMAT=json \
    SWIFT_BACKTRACE=enable=yes,sanitize=yes,threads=all,images=all,interactive=no,swift-backtrace=/usr/local/libexec/swift-backtrace-static
# /healthz, /readyz, /metrics
EXPOSE 9090
# SIGTERM drains: stop claiming, finish or give back in-flight work, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/outbox-relay"]
CMD ["run"]
