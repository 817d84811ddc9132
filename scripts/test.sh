#!/usr/bin/env bash
# Runs the test suite: sets up .venv and the S3A jars (first run) and runs pytest
# with any arguments given.
source "$(dirname "$0")/_setup.sh"
check_java
setup_venv dev
setup_s3a_jars              # tests/spark/test_s3.py runs the job on s3a://
cd "$REPO"

# The audit report is tested in a real browser (tests/e2e/test_report_browser.py):
# Debian's chromium, installed here once when we are root (as on CI).
setup_chromium() {
    command -v chromium >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing chromium (headless browser for the report tests) with apt-get" >&2
        local log="$VENV/apt-chromium.log"
        { apt-get update -qq &&
          DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core fonts-liberation
        } > "$log" 2>&1 || {
            tail -n 20 "$log" >&2
            die "apt-get could not install chromium (full log: $log)."; }
        command -v chromium >/dev/null 2>&1 || die "chromium is still not on PATH after apt-get install."
    else
        echo "note: chromium is not installed and this is not root: the report's browser tests" \
             "will be skipped (Debian: sudo apt-get install chromium)." >&2
    fi
}
setup_chromium

exec "$VENV/bin/python" -m pytest "$@"
