#!/usr/bin/env bash
# The library as an embedder gets it: `meson install` into a staging directory, then
# everything from there with pkg-config alone (no path into the source or build tree):
# every public header compiles on its own with no DPDK include path (C++20, and pagewire.h
# as C11), and the C++ and C examples build and migrate a live workload between two
# processes over memif, each end's copy of the memory byte-equal.
set -u
build=$1
examples=$2
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

meson install -C "$build" --destdir "$dir/stage" --no-rebuild --quiet > "$dir/install.log" 2>&1 ||
  fail "meson install: $(tail -5 "$dir/install.log")"
pc_file=$(find "$dir/stage" -name pagewire.pc) || true
[[ -n $pc_file ]] || fail "no pagewire.pc installed"
pc_dir=$(dirname "$pc_file")
prefix=$(PKG_CONFIG_PATH=$pc_dir pkg-config --variable=prefix pagewire)
pc() { PKG_CONFIG_PATH=$pc_dir pkg-config --define-variable=prefix="$dir/stage$prefix" "$@" pagewire; }
cflags=$(pc --cflags) || fail "pkg-config --cflags pagewire"
libs=$(pc --libs) || fail "pkg-config --libs pagewire"
[[ $cflags != *dpdk* && $cflags != *rte_config* ]] || fail "DPDK reaches embedders' flags: $cflags"

# Each header alone, strict, with nothing but the installed include directory.
includedir=$(pc --variable=includedir)
for header in $(cd "$includedir" && find pagewire -name '*.hpp' | sort); do
  echo "#include <$header>" | c++ -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only $cflags -x c++ - \
    > "$dir/header.log" 2>&1 || fail "$header does not compile on its own: $(head -5 "$dir/header.log")"
done
echo '#include <pagewire.h>' | cc -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only $cflags -x c - \
  > "$dir/header.log" 2>&1 || fail "pagewire.h is not C11: $(head -5 "$dir/header.log")"

c++ -std=c++20 -O2 -Wall -Wextra -Werror $cflags "$examples/embed_kv_store.cpp" -o "$dir/kv" $libs -pthread \
  > "$dir/cc.log" 2>&1 || fail "the C++ example does not build: $(head -20 "$dir/cc.log")"
cc -std=c11 -O2 -Wall -Wextra -Werror $cflags "$examples/embed_minimal.c" -o "$dir/cmin" $libs -pthread \
  > "$dir/cc.log" 2>&1 || fail "the C example does not build: $(head -20 "$dir/cc.log")"
export LD_LIBRARY_PATH=$(pc --variable=libdir)

# A migration between two processes: destination (memif server) first, then the source.
migrate() {
  local name=$1 program=$2 mode=${3:-} sock=$dir/$1.sock
  "$program" destination "net_memif0,role=server,socket=$sock" "$dir/$name.received" $mode > "$dir/$name.dst.log" 2>&1 &
  pids+=($!)
  local destination=$!
  # The memif server must be listening before its client starts.
  for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.1; done
  "$program" source "net_memif0,role=client,socket=$sock" "$dir/$name.sent" $mode > "$dir/$name.src.log" 2>&1 ||
    fail "$name source: $(tail -5 "$dir/$name.src.log"); destination: $(tail -5 "$dir/$name.dst.log")"
  wait "$destination" || fail "$name destination: $(tail -5 "$dir/$name.dst.log")"
  grep -q "committed" "$dir/$name.dst.log" || fail "$name: the destination never committed"
  cmp -s "$dir/$name.sent" "$dir/$name.received" || fail "$name: the two ends' memory differs"
  [[ $(od -An -tx1 -N65536 "$dir/$name.sent" | tr -d ' 0\n') != "" ]] || fail "$name: nothing was written"
  echo "$name: $(grep -h "source:" "$dir/$name.src.log")"
}
migrate kv "$dir/kv"
migrate c "$dir/cmin"
migrate cpost "$dir/cmin" postcopy  # the C interface's postcopy: the start hook, then the rest
grep -q "starts with 8192 pages still to come" "$dir/cpost.dst.log" || fail "cpost: the start hook never ran"
grep -q "(postcopy)" "$dir/cpost.src.log" || fail "cpost: the source did not switch to postcopy"
echo "OK"
