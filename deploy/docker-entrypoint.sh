#!/bin/sh
# The image's entry point: fetches the in-process models into /app/models when they are missing
# (an image built with BAKE_MODELS=0, or an empty volume mounted over them), then runs ragback.
# RAGBACK_FETCH_MODELS=0 skips the fetch (a deployment with API models only).
set -eu
if [ "${1:-}" = "serve" ] && [ "${RAGBACK_FETCH_MODELS:-1}" != "0" ]; then
    ragback model fetch || echo "docker-entrypoint: the models could not be fetched; ragback says what is missing" >&2
fi
exec ragback "$@"
