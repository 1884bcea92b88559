#!/usr/bin/env bash
# Starts the GStreamer control server, or runs its test suite, installing
# whatever is missing first (GStreamer and its plugins, libnice for WebRTC, ffmpeg, Deno).
#
#   ./start_server.sh          start the server (configuration: README.md); it is
#                              started again when it dies, with back-off
#   ./start_server.sh once     start the server without restarting it
#   ./start_server.sh test     run the whole test suite
#   ./start_server.sh bench    run the benchmarks
#   ./start_server.sh install  install the dependencies only
set -euo pipefail

DENO_VERSION="2.9.6"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

log() { printf '[start_server] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "Need root (or sudo) to run: $*"; exit 1
  fi
}

apt_packages=(
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  libgstreamer1.0-0 libgstreamer-plugins-base1.0-0 libgstrtspserver-1.0-0
  gstreamer1.0-rtsp gstreamer1.0-nice ffmpeg ca-certificates iproute2
)
# Only the tests need these: Debian's Chromium for the browser tests, coturn for the TURN test,
# PostgreSQL for the PostgreSQL store and cluster tests, strace to see recordings reach the disk.
test_packages=(chromium fonts-dejavu-core coturn postgresql strace)

install_linux() {
  local missing=()
  for package in "${apt_packages[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" ||
      missing+=("$package")
  done
  if ! command -v npm >/dev/null && ! deno_ok "$(command -v deno || true)"; then
    missing+=(nodejs npm)
  fi
  if [ "${#missing[@]}" -gt 0 ]; then
    log "Installing: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

install_macos() {
  command -v brew >/dev/null || { log "Homebrew is needed: https://brew.sh"; exit 1; }
  local formulae=(gstreamer ffmpeg node)
  for formula in "${formulae[@]}"; do
    brew list --versions "$formula" >/dev/null 2>&1 || { log "brew install $formula"; brew install "$formula"; }
  done
}

deno_ok() {
  [ -n "$1" ] && [ -x "$1" ] && "$1" --version 2>/dev/null | head -1 | grep -q "^deno ${DENO_VERSION} "
}

# Deno is pinned: 2.9.6 is the version the HTTP body handling was checked on (DESIGN.md).
ensure_deno() {
  local on_path
  on_path="$(command -v deno || true)"
  if deno_ok "$on_path"; then DENO="$on_path"; return; fi
  DENO="$here/.deno/node_modules/.bin/deno"
  if ! deno_ok "$DENO"; then
    log "Installing Deno ${DENO_VERSION} from the npm registry into .deno/"
    mkdir -p .deno
    npm install --silent --prefix .deno --no-save --no-package-lock --no-audit --no-fund \
      "deno@${DENO_VERSION}" >/dev/null
    deno_ok "$DENO" || { log "Deno ${DENO_VERSION} did not install"; exit 1; }
  fi
}

install_all() {
  case "$(uname -s)" in
    Linux)
      if command -v apt-get >/dev/null; then install_linux "$@"; else
        log "Not a Debian/Ubuntu system: install GStreamer 1.22+, its plugins, gst-rtsp-server and ffmpeg yourself"
      fi ;;
    Darwin) install_macos ;;
  esac
  ensure_deno
  export PATH="$(dirname "$DENO"):$PATH"
}

# Exit status of a start-up that cannot work as configured (src/main.ts): restarting would not help.
EXIT_CONFIG=78

# Runs the server and starts it again whenever it dies (a crash, kill -9, an uncaught error),
# waiting 1 s, doubling up to 60 s, back to 1 s after a minute of running. A clean exit
# (SIGTERM/SIGINT to this script, or the server stopping by itself with status 0) ends it.
supervise() {
  local delay=1 started status child="" stopping=""
  trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
  while :; do
    started=$SECONDS
    "$DENO" task start &
    child=$!
    status=0
    wait "$child" || status=$?
    # A trapped signal interrupts wait; wait again for the server's own exit status.
    while kill -0 "$child" 2>/dev/null; do wait "$child" || status=$?; done
    child=""
    if [ -n "$stopping" ]; then
      # deno task reports the signal it passed on (143, 130) even when the server stopped cleanly.
      case "$status" in 0 | 130 | 143) exit 0 ;; *) exit "$status" ;; esac
    fi
    if [ "$status" -eq 0 ]; then log "Server exited cleanly"; exit 0; fi
    if [ "$status" -eq "$EXIT_CONFIG" ]; then log "Server cannot start as configured (status $status): not restarting"; exit "$status"; fi
    if (( SECONDS - started >= 60 )); then delay=1; fi
    log "Server died (exit status $status); restarting in ${delay}s"
    sleep "$delay" &
    child=$!
    wait "$child" || true
    kill "$child" 2>/dev/null || true
    child=""
    if [ -n "$stopping" ]; then exit 0; fi
    delay=$(( delay * 2 > 60 ? 60 : delay * 2 ))
  done
}

command="${1:-start}"
case "$command" in
  install) install_all ;;
  start)
    install_all
    supervise ;;
  once)
    install_all
    exec "$DENO" task start ;;
  test)
    install_all "${test_packages[@]}"
    # deno test's summary is "ok | N passed | N failed"; CI also reads the plain "N passed, N failed".
    output="$(mktemp)"
    set +e
    "$DENO" task test 2>&1 | tee "$output"
    status=${PIPESTATUS[0]}
    set -e
    summary=$(sed 's/\x1b\[[0-9;]*m//g' "$output" | grep -E '^(ok|FAILED) \| [0-9]+ passed' | tail -1 || true)
    passed=$(printf '%s' "$summary" | sed -nE 's/.* ([0-9]+) passed.*/\1/p')
    failed=$(printf '%s' "$summary" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
    rm -f "$output"
    echo "tests: ${passed:-0} passed, ${failed:-0} failed"
    exit "$status" ;;
  bench)
    install_all
    # The peer the control-plane benchmark compares us with (bench/build_gstd.sh; needs root).
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      bench/build_gstd.sh || log "gstd did not build; the benchmark runs without it"
    fi
    exec "$DENO" task bench ;;
  *) log "Unknown command '$command' (start, once, test, bench or install)"; exit 2 ;;
esac
