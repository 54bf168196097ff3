#!/usr/bin/env bash
# Authenticated and encrypted live migrations between two processes, keyed from a file and
# from the environment: each verifies, reports its security, and never prints the key. A
# key file others can read, or ends with different keys, end in errors that say so.
set -u
pw=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s\n' "$key" > "$dir/key"
chmod 600 "$dir/key"
# The key's bytes in any form a log could show them: hex, and a slice of it.
no_key_in() { ! grep -qi -e "$key" -e "${key:8:24}" "$1" || fail "the key appears in $1"; }

"$pw" demo --size-mib 64 --json --psk-file "$dir/key" --encrypt > "$dir/encrypted.log" 2>&1 \
  || fail "encrypted demo: $(tail -5 "$dir/encrypted.log")"
grep -q '"security":"encrypted"' "$dir/encrypted.log" || fail "no encrypted session: $(cat "$dir/encrypted.log")"
grep -Eq '"event":"demo".*"verified":true' "$dir/encrypted.log" || fail "encrypted demo not verified"
no_key_in "$dir/encrypted.log"

PAGEWIRE_PSK=$key "$pw" demo --size-mib 64 --json > "$dir/authenticated.log" 2>&1 \
  || fail "demo keyed from PAGEWIRE_PSK: $(tail -5 "$dir/authenticated.log")"
grep -q '"security":"authenticated"' "$dir/authenticated.log" || fail "no authenticated session"
grep -Eq '"event":"demo".*"verified":true' "$dir/authenticated.log" || fail "authenticated demo not verified"
no_key_in "$dir/authenticated.log"

chmod 644 "$dir/key"
if "$pw" demo --size-mib 64 --psk-file "$dir/key" > "$dir/exposed.log" 2>&1; then fail "a world-readable key was used"; fi
grep -q "chmod 600" "$dir/exposed.log" || fail "no advice for a readable key: $(cat "$dir/exposed.log")"
no_key_in "$dir/exposed.log"

# Different keys: the destination refuses, the source says the keys differ.
chmod 600 "$dir/key"
head -c 32 /dev/urandom > "$dir/other"
chmod 600 "$dir/other"
sock=$dir/memif.sock
"$pw" dst --vdev "net_memif0,role=server,socket=$sock" --size-mib 16 --psk-file "$dir/other" --timeout-s 5 \
  --file-prefix "pw-secure-dst-$$" > "$dir/dst.log" 2>&1 &
dst=$!
for _ in $(seq 100); do grep -q "ready" "$dir/dst.log" && break; sleep 0.1; done
if "$pw" src --vdev "net_memif0,role=client,socket=$sock" --size-mib 16 --psk-file "$dir/key" --timeout-s 5 \
  --file-prefix "pw-secure-src-$$" > "$dir/src.log" 2>&1; then fail "a source with another key migrated"; fi
wait $dst && fail "a destination with another key accepted"
grep -q "pre-shared key differs" "$dir/src.log" || fail "source: $(tail -3 "$dir/src.log")"
grep -q "pre-shared key differs" "$dir/dst.log" || fail "destination: $(tail -3 "$dir/dst.log")"
no_key_in "$dir/src.log"
echo "secure demos verified; refusals said why; no key in any output"
