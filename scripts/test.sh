#!/usr/bin/env bash
# Runs the test suite: sets up .venv (first run) and runs pytest with any arguments given.
source "$(dirname "$0")/_setup.sh"
cd "$REPO"
exec "$VENV/bin/python" -m pytest "$@"
