#!/usr/bin/env bash
# The README's two commands:
#   tools/run.sh demo   set up, build, run the embedded demo (the main job)
#   tools/run.sh test   set up, build, run every test suite: the release build and an
#                       ASan+UBSan clang build with the fuzzers; last line "N passed, N failed"
# Idempotent and quiet when there is nothing to do. Extra arguments after `demo` go to it.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly PACKAGES=(
  meson ninja-build pkg-config g++ python3
  python3-jsonschema        # the test that checks every --json event against docs/json-events.schema.json
  libdpdk-dev dpdk libisal-dev libhwloc-dev libboost-program-options-dev libssl-dev
  libgtest-dev libgmock-dev nlohmann-json3-dev libxxhash-dev
  clang libclang-rt-14-dev  # the sanitizer build and libFuzzer
  iproute2                  # network namespaces and veth for the real-host tests
  qemu-system-x86           # `pagewire bench qemu` and its test: the peer to beat
)
readonly HUGEPAGES_2M=512  # 1 GiB for DPDK mempools; images live in ordinary memory
readonly LOG_DIR=build-logs

log_or_die() {  # log_or_die NAME CMD...: run quietly, show the log only when it fails
  local name=$1
  shift
  mkdir -p "$LOG_DIR"
  if ! "$@" >"$LOG_DIR/$name.log" 2>&1; then
    cat "$LOG_DIR/$name.log" >&2
    echo "run.sh: '$*' failed (log: $LOG_DIR/$name.log)" >&2
    exit 1
  fi
}

ensure_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  if ((EUID != 0)); then
    echo "run.sh: missing packages. As root, run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "run.sh: installing ${missing[*]}"
  log_or_die apt-update apt-get update -qq
  log_or_die apt-install env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# DPDK wants 2 MiB hugepages on a hugetlbfs mount. When they cannot be had (not root, a
# container without the sysfs knob), pagewire's EAL set-up falls back to --no-huge.
ensure_hugepages() {
  local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
  [[ -w $nr ]] || return 0
  if (($(cat "$nr") < HUGEPAGES_2M)); then
    echo "$HUGEPAGES_2M" >"$nr" 2>/dev/null || true
    (($(cat "$nr") >= HUGEPAGES_2M)) ||
      echo "run.sh: only $(cat "$nr") hugepages reserved; DPDK will use --no-huge" >&2
  fi
  if ! mountpoint -q /dev/hugepages 2>/dev/null; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null ||
      echo "run.sh: cannot mount hugetlbfs on /dev/hugepages; DPDK will use --no-huge" >&2
  fi
}

build_release() {
  [[ -f build/build.ninja ]] || log_or_die setup-release meson setup build --buildtype=release
  log_or_die build-release ninja -C build
}

build_sanitized() {
  [[ -f build-san/build.ninja ]] ||
    log_or_die setup-san env CXX=clang++ meson setup build-san --buildtype=debugoptimized \
      -Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=enabled
  log_or_die build-san ninja -C build-san
}

run_tests() {
  local status=0
  meson test -C build --print-errorlogs || status=1
  meson test -C build-san --print-errorlogs || status=1
  python3 tools/test_summary.py build build-san || status=1
  return $status
}

main() {
  local command=${1:-}
  case $command in
    demo)
      shift
      ensure_packages
      ensure_hugepages
      build_release
      exec build/tools/pagewire demo "$@"
      ;;
    test)
      ensure_packages
      ensure_hugepages
      build_release
      build_sanitized
      run_tests
      ;;
    *)
      echo "usage: tools/run.sh demo [options] | tools/run.sh test" >&2
      exit 2
      ;;
  esac
}

main "$@"
