# tollgate container image: the sidecar (tollgate, which also writes the capture rules with
# `tollgate init-iptables`) and the control plane (tollgate-cp), on Debian 12.
#   docker build -t tollgate:0.1.0 .
# Stage 1 builds with scripts/setup.sh (Debian packages, wolfSSL with AES-NI from Debian's
# source package); stage 2 is debian:bookworm-slim with only the runtime libraries and
# iptables, running as uid 1337 (the uid the capture rules exempt).

FROM debian:bookworm AS build
WORKDIR /src
# setup.sh first and alone: its packages and the wolfSSL build stay cached in this layer
# until setup.sh itself changes.
COPY scripts/setup.sh scripts/setup.sh
RUN TOLLGATE_SKIP_BUILD=1 ./scripts/setup.sh \
    && rm -rf /var/lib/apt/lists/* /src/.cache/wolfssl-src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DTOLLGATE_TESTS=OFF \
    && cmake --build /build -j"$(nproc)" --target tollgate tollgate-cp \
    && strip /build/tollgate /build/tollgate-cp

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libuv1 libyaml-0-2 libprotobuf-c1 libjansson4 libcurl4 iptables ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 1337 tollgate \
    && useradd --system --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin tollgate
COPY --from=build /build/tollgate /build/tollgate-cp /usr/local/bin/
USER 1337:1337
EXPOSE 15000 15001 15006 15010 15011
ENTRYPOINT ["tollgate"]
CMD ["version"]
