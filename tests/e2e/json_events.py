#!/usr/bin/env python3
"""Every JSON event the CLI emits, checked against the documented schema
(docs/json-events.schema.json, explained in docs/json.md).

Runs, each with --json: a demo migration capped at 2 Gbit/s (so that round 0 lasts long
enough for progress events), a postcopy demo, a source that fails (no peer), `bench transport` over each
link a single process can run (ring, null), `bench track` and `bench postcopy`. For every run: stdout is pure
JSON (one object per line, text went to stderr), every object validates, times never go
back, and the events a run must produce are there. The schema itself is checked to refuse
what it should (an undocumented field, a wrong type), so a vacuous schema fails too.

Usage: json_events.py PAGEWIRE SCHEMA
"""

import json
import subprocess
import sys

from event_schema import load_validator


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def events_of(pagewire, args, expect_status, timeout=300):
    run = subprocess.run([pagewire] + args, capture_output=True, text=True, timeout=timeout)
    if run.returncode != expect_status:
        fail(f"{' '.join(args)}: exit {run.returncode}, expected {expect_status}; stderr: {run.stderr[-2000:]}")
    events = []
    for number, line in enumerate(run.stdout.splitlines(), 1):
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            fail(f"{' '.join(args)}: stdout line {number} is not JSON: {line[:200]!r}")
    if not events:
        fail(f"{' '.join(args)}: no events")
    return events


def check(validator, args, events, required):
    by_role_time = {}
    for event in events:
        errors = sorted(validator.iter_errors(event), key=lambda e: list(e.absolute_path))
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path)
            fail(f"{' '.join(args)}: event {event.get('event')!r} breaks the schema at '{where}': {errors[0].message}")
        role = event.get("role", "bench")
        if event["time"] < by_role_time.get(role, 0):
            fail(f"{' '.join(args)}: {role}'s event times go back")
        by_role_time[role] = event["time"]
    names = [e["event"] for e in events]
    for name, least in required.items():
        if names.count(name) < least:
            fail(f"{' '.join(args)}: {names.count(name)} '{name}' events, expected at least {least}: {names}")
    print(f"{' '.join(args[:2])}: {len(events)} events valid ({', '.join(sorted(set(names)))})")


def check_progress(events):
    """Within a round, pages_done only grows and bytes_remaining is what is left of it."""
    last = {}
    for e in (e for e in events if e["event"] == "progress"):
        if e["pages_done"] > e["pages"]:
            fail(f"progress: {e['pages_done']} of {e['pages']} pages done")
        if e["pages_done"] < last.get(e["round"], 0):
            fail(f"progress: round {e['round']} went back")
        last[e["round"]] = e["pages_done"]


def check_schema_refuses(validator, events):
    migrated = next(e for e in events if e["event"] == "migrated")
    for broken, why in [({**migrated, "undocumented": 1}, "an undocumented field"),
                        ({**migrated, "downtime_ms": "4 ms"}, "a string for a number"),
                        ({k: v for k, v in migrated.items() if k != "digest"}, "a missing field"),
                        ({**migrated, "schema": 2}, "another schema version")]:
        if validator.is_valid(broken):
            fail(f"the schema accepts a migrated event with {why}")
    # The frames each end sent and took are reported, down to why any were dropped.
    received = next(e for e in events if e["event"] == "received")
    if migrated["frames"]["sent"] == 0 or received["frames"]["received"] < migrated["frames"]["sent"] // 2:
        fail(f"frames: source {migrated['frames']}, destination {received['frames']}")


def main():
    if len(sys.argv) != 3:
        fail("usage: json_events.py PAGEWIRE SCHEMA")
    pagewire, schema_path = sys.argv[1], sys.argv[2]
    validator = load_validator(schema_path)

    demo_args = ["demo", "--json", "--size-mib", "128", "--", "--max-gbps", "2"]
    demo = events_of(pagewire, demo_args, 0)
    check(validator, demo_args, demo,
          {"port": 2, "ready": 1, "round": 1, "progress": 1, "migrated": 1, "received": 1, "demo": 1})
    check_progress([e for e in demo if e.get("role") == "src"])
    if not any(e["event"] == "progress" and e["role"] == "dst" for e in demo):
        fail("the destination sent no progress event")
    check_schema_refuses(validator, demo)

    # Postcopy at once: both ends' postcopy objects, filled in.
    postcopy_args = ["demo", "--json", "--size-mib", "32", "--", "--postcopy", "now"]
    postcopy = events_of(pagewire, postcopy_args, 0)
    check(validator, postcopy_args, postcopy, {"migrated": 1, "received": 1, "demo": 1})
    if any(e["event"] in ("migrated", "received") and e.get("postcopy") is None for e in postcopy):
        fail("a postcopy migration without its postcopy figures")

    failing_args = ["src", "--json", "--size-mib", "16", "--timeout-s", "1",
                    "--vdev", "net_memif0,role=client,socket=/tmp/pagewire-json-events-nobody.sock"]
    check(validator, failing_args, events_of(pagewire, failing_args, 1), {"failed": 1})

    # Nobody answers on net_null: the outcome stays unknown (exit 3), said in an event.
    asking_args = ["outcome", "--json", "--session", "42", "--wait-s", "1", "--peer-mac", "02:00:00:00:00:02",
                   "--vdev", "net_null0"]
    check(validator, asking_args, events_of(pagewire, asking_args, 3), {"outcome": 1})

    for args in (["bench", "transport", "--json", "--region-mib", "16", "--repeats", "1", "--loss", "0"],
                 ["bench", "transport", "--json", "--link", "null", "--region-mib", "16", "--repeats", "1"],
                 ["bench", "track", "--json", "--size-mib", "16", "--repeats", "1"],
                 ["bench", "postcopy", "--json", "--size-mib", "16", "--repeats", "1", "--delay-ms", "5"]):
        check(validator, args, events_of(pagewire, args, 0), {"result": 1})
    print("OK")


if __name__ == "__main__":
    main()
