#!/usr/bin/env bash
# The project's setup: checks what must come from outside the repository and
# creates/updates .venv at the repository root. Sourced by scripts/demo.sh (the
# demo's dependencies only) and scripts/test.sh (the test dependencies and the
# S3A jars); run it alone to prepare by hand:
#   scripts/_setup.sh                # .venv with the test dependencies
#   scripts/_setup.sh --demo         # .venv with what the demo needs, nothing else
#   scripts/_setup.sh --s3a-jars     # s3fs into .venv and Spark's S3A jars into
#                                    # conf/jars/lib (Maven, 700 MB): jobs on s3a://
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

# setup_venv EXTRA...: lime-spark (editable) with the named extras of
# pyproject.toml (demo, s3, dev; dev holds the other two), pinned by
# constraints.txt. The stamp records the hash of both files and the extras
# installed: nothing is done while they are current and hold those asked for
# (the demo after the tests installs nothing); when either file changes, every
# extra installed is brought up to date.
# uv installs, from its cache without the network when it can (no revalidation
# of the index, no rebuild of pyspark's 456 MB sdist), by hard links rather than
# unzipping, without byte-compiling what is never imported; online otherwise.
# LIME_SPARK_INSTALLER=pip installs with pip alone.
setup_venv() {
    local py stamp want have_hash="" have_extras="" extras extra missing="" log uv=""
    stamp="$VENV/.lime-spark-installed"
    want="$(cat "$REPO/pyproject.toml" "$REPO/constraints.txt" | sha256sum | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ]; then
        read -r have_hash have_extras < "$stamp" || true
    fi
    for extra in "$@"; do
        case ",$have_extras," in *",$extra,"*) ;; *) missing="$missing,$extra" ;; esac
    done
    [ "$have_hash" = "$want" ] && [ -z "$missing" ] && return 0

    py="$(find_python)" || die "Python 3.11+ is required and was not found (set PYTHON=/path/to/python3.11)."
    if [ ! -x "$VENV/bin/python" ]; then
        echo "setup: creating $VENV with $py" >&2
        "$py" -m venv --without-pip "$VENV" || die "could not create $VENV (Debian: apt-get install python3-venv)"
    fi
    extras="$(echo "$have_extras$missing" | tr ',' '\n' | sed '/^$/d' | sort -u | paste -sd, -)"
    case ",$extras," in *,dev,*) extras="$(echo "$extras,demo,s3" | tr ',' '\n' | sort -u | paste -sd, -)" ;; esac
    echo "setup: installing lime-spark[$extras] into .venv (a minute or two the first time on a machine)" >&2
    log="$VENV/install.log"
    : > "$log"
    if [ "${LIME_SPARK_INSTALLER:-uv}" = "uv" ]; then
        uv="$(_venv_uv "$py" >> "$log" 2>&1 && echo "$VENV/bin/uv")" ||
            { uv=""; echo "setup: could not install uv (see $log); installing with pip" >&2; }
    fi
    if [ -n "$uv" ]; then
        # pip too: the README's `.venv/bin/python -m pip wheel ...`
        local args=(pip install --python "$VENV/bin/python" -c "$REPO/constraints.txt" -e "$REPO[$extras]" pip)
        "$uv" "${args[@]}" --offline >> "$log" 2>&1 || "$uv" "${args[@]}" >> "$log" 2>&1
    else
        { "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip; } >> "$log" 2>&1 &&
        "$VENV/bin/python" -m pip install -c "$REPO/constraints.txt" -e "$REPO[$extras]" >> "$log" 2>&1
    fi || {
        tail -n 30 "$log" >&2
        die "the project's dependencies could not be installed (full log: $log)."; }
    echo "$want $extras" > "$stamp"
}

# uv (pinned by constraints.txt) into .venv, with the first pip at hand.
_venv_uv() {
    local py="$1" pin=(-c "$REPO/constraints.txt" uv)
    [ -x "$VENV/bin/uv" ] && return 0
    if "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        "$VENV/bin/python" -m pip install -q "${pin[@]}"
    else      # the base interpreter's pip, installing into the venv (pip >= 22.3), else ensurepip
        "$py" -m pip --python "$VENV/bin/python" install -q "${pin[@]}" ||
            { "$VENV/bin/python" -m ensurepip && "$VENV/bin/python" -m pip install -q "${pin[@]}"; }
    fi
    [ -x "$VENV/bin/uv" ]
}

# Spark's S3A connector (hadoop-aws matching pyspark's Hadoop, and the 686 MB AWS
# SDK bundle it needs), resolved by Maven from conf/jars/pom.xml into the
# git-ignored conf/jars/lib/, which lime-spark puts on the classpath. Only the
# tests and jobs on s3a:// need it (a job on S3 without it stops at once and says
# so). Skipped when the jars for this pom are present; LIME_SPARK_SKIP_S3A_JARS=1
# skips it (no s3a:// then).
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
        die "Maven (mvn) is required once to fetch Spark's S3A jars into conf/jars/lib (Debian: apt-get install maven); LIME_SPARK_SKIP_S3A_JARS=1 scripts/test.sh runs the tests without them (the S3 job test is skipped)."
    echo "setup: fetching the S3A jars (hadoop-aws, 686 MB AWS SDK bundle) into conf/jars/lib with Maven" >&2
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

if [ "${BASH_SOURCE[0]}" = "$0" ]; then          # run, not sourced
    extras=() jars=0
    for arg in "$@"; do
        case "$arg" in
            --s3a-jars) jars=1 extras+=(s3) ;;       # s3fs too: images, model, overlays on S3
            --demo) extras+=(demo) ;;
            -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) die "unknown option $arg (scripts/_setup.sh [--s3a-jars] [--demo])" ;;
        esac
    done
    [ "${#extras[@]}" -gt 0 ] || extras=(dev)
    check_java
    setup_venv "${extras[@]}"
    if [ "$jars" = 1 ]; then
        LIME_SPARK_SKIP_S3A_JARS=0 setup_s3a_jars
        echo "setup: done: .venv and Spark's S3A jars in conf/jars/lib" >&2
    else
        echo "setup: done: .venv (add the S3A jars for s3a:// jobs: scripts/_setup.sh --s3a-jars)" >&2
    fi
fi
