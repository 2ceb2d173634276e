# The one `forum` binary; every compose service runs one of its roles.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin forum

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/forum /usr/local/bin/forum
USER 65534:65534
ENTRYPOINT ["forum"]
