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

# Spark's S3A connector (hadoop-aws matching pyspark's Hadoop, and the AWS SDK
# bundle it needs), resolved by Maven from conf/jars/pom.xml into the git-ignored
# conf/jars/lib/, which lime-spark puts on the classpath. Skipped when the jars
# for this pom are present; LIME_SPARK_SKIP_S3A_JARS=1 skips it (no s3a:// then).
setup_s3a_jars() {
    local pom="$REPO/conf/jars/pom.xml" lib="$REPO/conf/jars/lib" stamp want tmp log
    [ "${LIME_SPARK_SKIP_S3A_JARS:-0}" = "1" ] && return 0
    stamp="$lib/.pom-sha256"
    want="$(sha256sum "$pom" | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
       compgen -G "$lib/hadoop-aws-*.jar" >/dev/null && compgen -G "$lib/bundle-*.jar" >/dev/null; then
        return 0
    fi
    command -v mvn >/dev/null 2>&1 ||
        die "Maven (mvn) is required once to fetch Spark's S3A jars into conf/jars/lib (Debian: apt-get install maven), or set LIME_SPARK_SKIP_S3A_JARS=1 to run without s3a:// support."
    echo "setup: fetching the S3A jars (hadoop-aws, AWS SDK bundle) into conf/jars/lib with Maven" >&2
    tmp="$REPO/conf/jars/target/lib.$$"          # conf/jars/target/ is git-ignored too
    log="$REPO/conf/jars/target/mvn.log"
    rm -rf "$tmp"; mkdir -p "$REPO/conf/jars/target"
    mvn -q -B -f "$pom" dependency:copy-dependencies -Djars.dir="$tmp" > "$log" 2>&1 || {
        rm -rf "$tmp"; tail -n 30 "$log" >&2
        die "Maven could not fetch the S3A jars of $pom (full log: $log)."; }
    echo "$want" > "$tmp/.pom-sha256"
    rm -rf "$lib"
    mv "$tmp" "$lib"
    rm -f "$log"
}

export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export TQDM_DISABLE="${TQDM_DISABLE:-1}"
check_java
setup_venv
setup_s3a_jars
