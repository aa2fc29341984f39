#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (`.ci/run` calls this script
# after its format, lint and doc checks).
#
# It installs what the suite needs first, so it passes on a fresh machine
# with only Rust present:
#   * Debian's `chromium` package, for the HTML report's browser test
#     (tests/report_html.rs drives /usr/bin/chromium), when it is absent and
#     this runs as root (or with password-less sudo). Otherwise it stops
#     and says what to install; NPUOPT_SKIP_BROWSER_TESTS=1 skips that one
#     test instead, visibly.
#   * a virtualenv for the Python package's tests (target/python-test-venv,
#     made with the machine's python3, or $PYTHON), with pytest, numpy and
#     the package itself — `pip install ./python`, built by maturin in the
#     dev profile into this target/ folder, so it reuses what `cargo test`
#     compiled — from the package registry.
# Then it runs the Rust tests (`cargo test --workspace`, which needs no
# Python) and the Python tests (pytest python/tests).
set -euo pipefail
cd "$(dirname "$0")"

say() { echo "test.sh: $*" >&2; }

ensure_chromium() {
    [ -x /usr/bin/chromium ] && return 0
    if [ "${NPUOPT_SKIP_BROWSER_TESTS:-}" = 1 ]; then
        say "/usr/bin/chromium is absent; NPUOPT_SKIP_BROWSER_TESTS=1: the browser test will be skipped"
        return 0
    fi
    local sudo=
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=sudo
        else
            say "/usr/bin/chromium is missing and installing it needs root."
            say "Install Debian's chromium package (apt-get install chromium), or set"
            say "NPUOPT_SKIP_BROWSER_TESTS=1 to skip the HTML report's browser test."
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null; then
        say "/usr/bin/chromium is missing and there is no apt-get to install it with;"
        say "install Chromium at /usr/bin/chromium, or set NPUOPT_SKIP_BROWSER_TESTS=1."
        exit 1
    fi
    say "installing Debian's chromium for the HTML report's browser test"
    # --reinstall also brings back a /usr/bin/chromium that was removed by
    # hand while the package stayed registered.
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --reinstall chromium >/dev/null
    /usr/bin/chromium --version
}

python_tests() {
    local venv=target/python-test-venv
    if [ ! -x "$venv/bin/python" ]; then
        say "creating the Python test environment in $venv"
        "${PYTHON:-python3}" -m venv "$venv"
    fi
    # pip builds a local folder afresh on every install: the package is
    # always the code under test.
    MATURIN_PEP517_ARGS="--profile dev" "$venv/bin/pip" install -q \
        --disable-pip-version-check pytest numpy ./python
    "$venv/bin/python" -m pytest python/tests -q
}

ensure_chromium
cargo test --workspace
python_tests
