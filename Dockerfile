# A small image of the pier binary: built with the Rust toolchain, run on distroless (glibc,
# no shell, no package manager) as the unprivileged `nonroot` user (65532).
#   docker build -t pier:0.1.0 .
FROM rust:1.95-bookworm AS build
# pingora builds zlib-ng with cmake (design.md §8).
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin pier \
    && cp target/release/pier /pier \
    && strip /pier

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /pier /usr/local/bin/pier
USER 65532:65532
EXPOSE 8080 8443 9090
ENTRYPOINT ["/usr/local/bin/pier"]
CMD ["run"]
