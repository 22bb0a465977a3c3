# Build: the release binary, statically against the build image's glibc.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ironlb

# Run: a small Debian with the binary. File capabilities let the speaker open raw sockets and
# join multicast groups as a non-root user; the controller needs none and is given none.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 libcap2-bin=1:2.66-4+deb12u2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/ironlb /usr/local/bin/ironlb
RUN setcap cap_net_raw,cap_net_admin+ep /usr/local/bin/ironlb
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ironlb"]
