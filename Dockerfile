# Build: the release binary, statically against the build image's glibc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Without the default `demo` feature: no test equipment (the lab crate) in the image.
RUN cargo build --release --locked --no-default-features --bin ironlb

# Run: a small Debian with the binary, without file capabilities: the kernel refuses to execute
# a binary whose file capabilities exceed the bounding set, which is empty in the controller's
# pod (it drops them all). The speaker gets NET_RAW and NET_ADMIN from its pod spec instead
# (deploy/base/daemonset.yaml); tests/security.rs runs both under their manifests' contexts.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ironlb /usr/local/bin/ironlb
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ironlb"]
