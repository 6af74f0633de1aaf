# syntax=docker/dockerfile:1
# The computenet image: `computenet serve` (and the other subcommands) on a distroless
# runtime, running as a non-root user. Build from the repository root:
#
#   docker build -t ghcr.io/computenet/computenet:0.1.0 .
#
# The binary uses rustls (no OpenSSL) and links only glibc and libgcc, which the
# distroless "cc" image provides.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Release build without the debug info the workspace profile keeps for profiling.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p computenet \
 && install -D -m 0755 target/release/computenet /out/computenet

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="computenet" \
      org.opencontainers.image.description="Scheduler that federates Kubernetes and Slurm clusters into one compute pool" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/computenet /usr/local/bin/computenet
# distroless "nonroot": uid/gid 65532, as the chart's securityContext expects.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/computenet"]
CMD ["serve", "--listen=0.0.0.0:8080"]
