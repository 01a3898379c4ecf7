#!/usr/bin/env bash
# The packages whose internals fnserve leans on (pyproject.toml's upper bounds: uvicorn's httptools protocol in
# gateway/one_write.py, pydantic-core's schema API in gateway/schema_compiler.py and sdk/introspect.py), at the newest
# versions those bounds allow, under the tests that exercise them: a second venv, made with uv, kept between runs
# (each run upgrades it), and a focused subset of the suite (about a minute). CI runs it after the suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.cache/venv-newest
UV=.venv/bin/uv  # uv is one of fnserve's own dependencies: `make` has installed it
PACKAGES=(uvicorn httptools pydantic pydantic-core)
test -x "$VENV/bin/python" || "$UV" venv --quiet --python .venv/bin/python "$VENV"
upgrades=()
for package in "${PACKAGES[@]}"; do upgrades+=(--upgrade-package "$package"); done
"$UV" pip install --quiet --python "$VENV/bin/python" "${upgrades[@]}" \
    -e . pytest pytest-timeout anyio hypothesis openapi-spec-validator
echo "Newest allowed versions:" $("$UV" pip freeze --python "$VENV/bin/python" | grep -iE "^($(IFS='|'; echo "${PACKAGES[*]}"))==" | tr '\n' ' ')
"$VENV/bin/python" -m compileall -q src
"$VENV/bin/python" -m pytest -q -p no:cacheprovider \
    tests/gateway/test_validation.py tests/gateway/test_streaming.py tests/gateway/test_invoke.py \
    tests/sdk tests/test_openapi_docs.py
