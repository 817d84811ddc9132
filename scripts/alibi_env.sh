#!/usr/bin/env bash
# The separate environment of scripts/bench_anchors.py's reference: alibi 0.9.6.
#
# alibi pins numpy < 2 (and older scikit-image, ...), which conflicts with the
# project's own environment, so it lives in its own virtualenv, .venv-alibi/
# (git-ignored), and runs as a separate process.  Idempotent: an environment
# that already imports alibi 0.9.6 and onnxruntime is left as it is.
#
#   bash scripts/alibi_env.sh            # create or check .venv-alibi
#   ALIBI_ENV=/elsewhere bash scripts/alibi_env.sh
#
# The ONNX Runtime version is the project's own (read from .venv), so both
# sides of the benchmark run the same model graph on the same runtime.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV="${ALIBI_ENV:-$ROOT/.venv-alibi}"
OURS="${OURS_PYTHON:-$ROOT/.venv/bin/python}"
ALIBI_VERSION="0.9.6"

fail() { echo "alibi_env.sh: $*" >&2; exit 1; }

ready() {
  [ -x "$ENV/bin/python" ] && "$ENV/bin/python" - "$ALIBI_VERSION" <<'PY' >/dev/null 2>&1
import sys
import alibi, onnxruntime  # noqa: F401
from alibi.explainers import AnchorImage  # noqa: F401
sys.exit(0 if alibi.__version__ == sys.argv[1] else 1)
PY
}

if ready; then
  echo "alibi_env.sh: $ENV is ready (alibi $ALIBI_VERSION)"
  exit 0
fi

ORT_PIN="onnxruntime"
if [ -x "$OURS" ]; then
  ORT_VERSION="$("$OURS" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || true)"
  [ -n "$ORT_VERSION" ] && ORT_PIN="onnxruntime==$ORT_VERSION"
fi

PY311="$(command -v python3.11 || true)"
if [ ! -x "$ENV/bin/python" ]; then
  if command -v uv >/dev/null 2>&1; then
    uv venv "$ENV" --python 3.11 || fail "uv could not create $ENV with Python 3.11"
  elif [ -n "$PY311" ]; then
    "$PY311" -m venv "$ENV" || fail "python3.11 -m venv $ENV failed"
  else
    fail "needs uv or python3.11 to create $ENV"
  fi
fi

# click: spacy (imported by alibi) needs it, and recent typer releases no longer bring it
PACKAGES=("alibi==$ALIBI_VERSION" "$ORT_PIN" "pillow" "click")
if command -v uv >/dev/null 2>&1; then
  uv pip install --python "$ENV/bin/python" "${PACKAGES[@]}" \
    || fail "could not install ${PACKAGES[*]} into $ENV (is PyPI reachable?)"
else
  "$ENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  "$ENV/bin/python" -m pip install --quiet "${PACKAGES[@]}" \
    || fail "could not install ${PACKAGES[*]} into $ENV (is PyPI reachable?)"
fi

ready || fail "$ENV was installed but does not import alibi $ALIBI_VERSION and onnxruntime"
echo "alibi_env.sh: $ENV is ready (alibi $ALIBI_VERSION, $ORT_PIN)"
