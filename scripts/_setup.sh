# Sourced by scripts/*.sh: checks what must come from outside the repository and
# creates/updates the project's .venv at the repository root.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"

die() { echo "error: $*" >&2; exit 1; }

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
           "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            command -v "$candidate"; return 0
        fi
    done
    return 1
}

check_java() {
    command -v java >/dev/null 2>&1 ||
        die "Java 17+ is required by Spark and was not found on PATH (Debian: apt-get install openjdk-17-jre-headless)."
    local version major
    version="$(java -version 2>&1 | head -n1 | sed -E 's/.*version "([^"]+)".*/\1/')"
    major="${version%%.*}"
    [ "$major" = "1" ] && major="$(echo "$version" | cut -d. -f2)"
    [ "${major:-0}" -ge 17 ] 2>/dev/null ||
        die "Java 17+ is required by Spark; found Java $version ($(command -v java))."
}

setup_venv() {
    local py stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        py="$(find_python)" || die "Python 3.11+ is required and was not found (set PYTHON=/path/to/python3.11)."
        echo "setup: creating $VENV with $py" >&2
        "$py" -m venv "$VENV" || die "could not create $VENV (Debian: apt-get install python3-venv)"
    fi
    stamp="$VENV/.lime-spark-installed"
    want="$(cat "$REPO/pyproject.toml" "$REPO/constraints.txt" | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        echo "setup: installing lime-spark and its dev dependencies into .venv (first run takes a few minutes)" >&2
        local log="$VENV/pip-install.log"
        { "$VENV/bin/python" -m pip install --upgrade pip &&
          "$VENV/bin/python" -m pip install -c "$REPO/constraints.txt" -e "$REPO[dev]"; } > "$log" 2>&1 || {
            tail -n 30 "$log" >&2
            die "pip could not install the project's dependencies (full log: $log)."; }
        echo "$want" > "$stamp"
    fi
}

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export TQDM_DISABLE="${TQDM_DISABLE:-1}"
check_java
setup_venv
