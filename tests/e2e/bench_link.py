#!/usr/bin/env python3
"""`pagewire bench link` as iperf3 is used: a server, then a client that sends for a while,
then kernel TCP between the same two ends for as long, both with --json. Over memif between two processes, and over DPDK af_packet on a veth pair
between two network namespaces (as two hosts; skipped without root and iproute2). For each:
every event validates against docs/json-events.schema.json, each end reports intervals and a
summary, the per-stream figures add up to the total, and the server received what the client
says it sent.

Usage: bench_link.py PAGEWIRE SCHEMA
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from event_schema import load_validator


def fail(message):
    print("FAIL: " + message)
    sys.exit(1)


def run_pair(pagewire, validator, name, server_cmd, client_cmd, duration_s=2.0):
    """Runs server and client; checks their events; returns the client's tcp_summary."""
    server = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The client waits for its server (--timeout-s); give the server's port a head start.
        time.sleep(1.0)
        client = subprocess.run(client_cmd, capture_output=True, text=True, timeout=120)
        server_out, server_err = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    if client.returncode != 0 or server.returncode != 0:
        fail(f"{name}: client exit {client.returncode} ({client.stderr[-800:]}), "
             f"server exit {server.returncode} ({server_err[-800:]})")
    results = {}
    for role, out in (("client", client.stdout), ("server", server_out)):
        events = [json.loads(line) for line in out.splitlines()]
        for event in events:
            errors = list(validator.iter_errors(event))
            if errors:
                fail(f"{name} {role}: {event.get('event')} breaks the schema: {errors[0].message}")
        intervals = [e for e in events if e["event"] == "interval"]
        summaries = [e for e in events if e["event"] == "summary"]
        if len(intervals) < 2 or len(summaries) != 1:
            fail(f"{name} {role}: {len(intervals)} intervals and {len(summaries)} summaries")
        summary = summaries[0]
        if sum(s["bytes"] for s in summary["streams"]) != summary["bytes"] or summary["gbps"] <= 0:
            fail(f"{name} {role}: the streams' bytes do not add up to the total: {summary}")
        if any(i["start_s"] >= i["end_s"] for i in intervals):
            fail(f"{name} {role}: an interval that ends before it starts")
        results[role] = summary
        tcp = [e for e in events if e["event"] == "tcp_summary"]
        if len(tcp) != 1 or tcp[0]["bytes"] == 0 or abs(tcp[0]["pagewire_gbps"] - summary["gbps"]) > 1e-9:
            fail(f"{name} {role}: kernel TCP beside it: {tcp}")
        results[role + "_tcp"] = tcp[0]
    if results["server"]["bytes"] < 0.9 * results["client"]["bytes"]:
        fail(f"{name}: the server received {results['server']['bytes']} bytes of the client's {results['client']['bytes']}")
    if results["client"]["end_s"] < duration_s:
        fail(f"{name}: the client stopped after {results['client']['end_s']:.2f} s of {duration_s}")
    if results["server_tcp"]["bytes"] != results["client_tcp"]["bytes"]:
        fail(f"{name}: kernel TCP: the server read {results['server_tcp']['bytes']} of {results['client_tcp']['bytes']}")
    print(f"{name}: client {results['client']['gbps']:.2f} Gbit/s ({results['client']['mpps']:.3f} Mpps, "
          f"{results['client']['retransmits']} resent), server {results['server']['gbps']:.2f} Gbit/s; "
          f"kernel TCP {results['client_tcp']['gbps']:.2f} Gbit/s")


def namespaces_available():
    return os.geteuid() == 0 and shutil.which("ip") is not None


def main():
    pagewire, schema_path = sys.argv[1], sys.argv[2]
    validator = load_validator(schema_path)
    common = ["--json", "--size-mib", "32", "--interval-s", "0.5", "--timeout-s", "30"]
    work = tempfile.mkdtemp(prefix="pw-link-")
    sock = os.path.join(work, "memif.sock")
    pid = os.getpid()
    tcp_port = str(20000 + pid % 20000)
    run_pair(pagewire, validator, "memif",
             [pagewire, "bench", "link", "--server", "--vdev", f"net_memif0,role=server,socket={sock}",
              "--file-prefix", f"pwl-s-{pid}", "--tcp-port", tcp_port] + common,
             [pagewire, "bench", "link", "--client", "--vdev", f"net_memif0,role=client,socket={sock}",
              "--file-prefix", f"pwl-c-{pid}", "--duration-s", "2", "--tcp", "127.0.0.1:" + tcp_port] + common)

    if not namespaces_available():
        print("af_packet: skipped (needs root and iproute2)")
        print("OK")
        return
    tag = f"pwl{pid}"
    ns = {"client": f"{tag}-c", "server": f"{tag}-s"}
    try:
        for n in ns.values():
            subprocess.run(["ip", "netns", "add", n], check=True)
            subprocess.run(["ip", "-n", n, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "link", "add", f"{tag}a", "mtu", "9000", "netns", ns["client"], "type", "veth",
                        "peer", "name", f"{tag}b", "mtu", "9000", "netns", ns["server"]], check=True)
        # Kernel addresses on the same veth, for the TCP figure between the same two "hosts".
        subprocess.run(["ip", "-n", ns["client"], "addr", "add", "10.9.0.1/24", "dev", f"{tag}a"], check=True)
        subprocess.run(["ip", "-n", ns["server"], "addr", "add", "10.9.0.2/24", "dev", f"{tag}b"], check=True)
        subprocess.run(["ip", "-n", ns["client"], "link", "set", f"{tag}a", "up"], check=True)
        subprocess.run(["ip", "-n", ns["server"], "link", "set", f"{tag}b", "up"], check=True)
        ring = "framecnt=1024,framesz=9216,blocksz=36864"
        run_pair(pagewire, validator, "af_packet",
                 ["ip", "netns", "exec", ns["server"], pagewire, "bench", "link", "--server",
                  "--vdev", f"net_af_packet0,iface={tag}b,{ring}", "--file-prefix", f"pwl-as-{pid}",
                  "--tcp-port", tcp_port] + common,
                 ["ip", "netns", "exec", ns["client"], pagewire, "bench", "link", "--client",
                  "--vdev", f"net_af_packet0,iface={tag}a,{ring}", "--file-prefix", f"pwl-ac-{pid}",
                  "--duration-s", "2", "--tcp", "10.9.0.2:" + tcp_port] + common)
    finally:
        for n in ns.values():
            subprocess.run(["ip", "netns", "del", n], stderr=subprocess.DEVNULL)
    print("OK")


if __name__ == "__main__":
    main()
