# Installs what building and testing Gatehouse needs, skipping whatever is already installed.
# Sourced by scripts/run and scripts/test. Usage: setup_build; setup_browser_tests.
set -euo pipefail

CARGO_LEPTOS_VERSION=0.3.10
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

wasm_bindgen_version() {
  # The exact wasm-bindgen version in Cargo.lock: the CLI must match it.
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$ROOT/Cargo.lock"
}

setup_build() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
  if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
    say "installing cargo-leptos $CARGO_LEPTOS_VERSION (once; several minutes)"
    cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
  fi
  local wbg
  wbg="$(wasm_bindgen_version)"
  if ! wasm-bindgen --version 2>/dev/null | grep -q " $wbg\$"; then
    say "installing wasm-bindgen-cli $wbg (once)"
    cargo install wasm-bindgen-cli --version "$wbg"
  fi
  # cargo-leptos compiles leptos with this set; setting it for plain cargo too lets both share
  # one build instead of compiling leptos twice.
  export LEPTOS_OUTPUT_NAME=gatehouse
}

setup_fuzzing() {
  if ! cargo fuzz --version 2>/dev/null | grep -q "0.13.2"; then
    say "installing cargo-fuzz (once)"
    cargo install cargo-fuzz --locked --version 0.13.2
  fi
}

setup_release() {
  if ! wasm-opt --version 2>/dev/null | grep -q "version 116"; then
    say "installing wasm-opt (binaryen 116) for release builds (once; 25-40 minutes)"
    cargo install wasm-opt --locked
  fi
}

setup_browser_tests() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Chromium from Debian's packages"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
  if [ ! -d "$ROOT/end2end/node_modules/@playwright/test" ] || \
     [ "$ROOT/end2end/package-lock.json" -nt "$ROOT/end2end/node_modules/.package-lock.json" ]; then
    say "installing the Playwright test runner"
    (cd "$ROOT/end2end" && npm ci --no-audit --no-fund)
  fi
}
