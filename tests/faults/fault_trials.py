#!/usr/bin/env python3
"""Seeded fault trials: migrations between two network namespaces, each hit by one fault at
a random moment, and the ownership invariants checked after every one.

Faults: SIGKILL of either end, SIGINT of either end (a clean abort: the other end must
hear it and end within a second), the path cut for less than the peer timeout (the session
must ride it out) or for longer, 7.5-12.5 s (ridden out too while the guest runs, within the
15 s resume window these trials give both ends; in the switchover both ends give up), or none
(a control trial). The
moment is uniform over the length of an unfaulted migration, so faults land in the
handshake, in pre-copy rounds, in the switchover and after it, in proportion to their length;
each trial records which phase the source was in when the fault hit.

Invariants, every trial:
  - the source reports success only if the destination committed, and the destination's
    output image then exists; with a static guest it equals the source's image byte for
    byte, with a writing guest both ends report the same digest;
  - a source that fails (exit 1) says its guest keeps running, and the destination then
    holds no output image;
  - "outcome unknown" (exit 3) leaves the source's guest paused: allowed, and counted;
  - no end crashes (no signal but ours), and a survivor ends within its timeouts.

Usage: fault_trials.py PAGEWIRE [--trials N] [--seed S] [--size-mib M] [--json]
Needs root and iproute2 (network namespaces, a veth pair, DPDK af_packet on each end).
Exit status: 0 every invariant held, 1 one did not, 77 skipped (not root).
"""

import argparse
import filecmp
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PEER_TIMEOUT_S = 5.0  # the sessions' default (SessionConfig::peer_timeout_ms)
FAULTS = ["kill-src", "kill-dst", "cut-short", "cut-long", "none", "interrupt-src", "interrupt-dst"]
OTHER_END_AFTER_INTERRUPT_S = 1.5  # the issue asks for 1 s; a loaded, sanitized build gets a margin


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Link:
    """Two namespaces joined by a veth pair; the path is cut by taking the source's end down."""

    def __init__(self, tag):
        self.ns_src, self.ns_dst = f"{tag}-a", f"{tag}-b"
        self.if_src, self.if_dst = f"{tag}-x", f"{tag}-y"
        sh("ip", "netns", "add", self.ns_src)
        sh("ip", "netns", "add", self.ns_dst)
        sh("ip", "link", "add", self.if_src, "netns", self.ns_src, "type", "veth", "peer", "name", self.if_dst,
           "netns", self.ns_dst)
        self.up()
        sh("ip", "-n", self.ns_dst, "link", "set", self.if_dst, "up")

    def up(self):
        sh("ip", "-n", self.ns_src, "link", "set", self.if_src, "up")

    def down(self):
        sh("ip", "-n", self.ns_src, "link", "set", self.if_src, "down")

    def close(self):
        for ns in (self.ns_src, self.ns_dst):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


class Trial:
    def __init__(self, number, rng, static_guest):
        self.number = number
        self.fault = rng.choice(FAULTS)
        self.static_guest = static_guest
        self.at_fraction = rng.uniform(0.0, 1.0)  # of an unfaulted migration's length
        self.cut_s = rng.uniform(0.3, 2.0) if self.fault == "cut-short" else rng.uniform(1.5, 2.5) * PEER_TIMEOUT_S
        self.phase = "not reached"
        self.follow_s = 0.0
        self.outcome = {}
        self.violations = []


def events(path):
    """The JSON events of a log, skipping EAL's lines."""
    found = []
    try:
        with open(path) as log:
            for line in log:
                if line.startswith("{"):
                    try:
                        found.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass
    except FileNotFoundError:
        pass
    return found


def phase_of(src_log):
    seen = events(src_log)
    if any(e.get("event") in ("migrated", "failed") for e in seen):
        return "ended"
    rounds = [e for e in seen if e.get("event") == "round"]
    if rounds:
        return f"after round {rounds[-1].get('round')}"
    if any(e.get("event") == "port" for e in seen):
        return "handshake or round 0"
    return "start-up"


class Runner:
    def __init__(self, pagewire, size_mib, work):
        self.pagewire = pagewire
        self.size_mib = size_mib
        self.work = work
        self.image = os.path.join(work, "source.img")
        subprocess.run([pagewire, "image", "create", self.image, "--profile", "database", "--size-mib",
                        str(size_mib), "--force"], check=True, stdout=subprocess.DEVNULL)
        self.link = Link(f"ft{os.getpid() % 100000}")

    def close(self):
        self.link.close()

    def start(self, trial):
        output = os.path.join(self.work, f"out-{trial.number}.img")
        dst_log = os.path.join(self.work, f"dst-{trial.number}.log")
        src_log = os.path.join(self.work, f"src-{trial.number}.log")
        common = ["--size-mib", str(self.size_mib), "--timeout-s", "40", "--mtu", "1500", "--json",
                  "--resume-window-s", "15"]
        with open(dst_log, "w") as log:
            dst = subprocess.Popen(["ip", "netns", "exec", self.link.ns_dst, self.pagewire, "dst", "--vdev",
                                    f"net_af_packet0,iface={self.link.if_dst},framecnt=1024", "--output", output]
                                   + common, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(dst_log, lambda: any(e.get("event") == "ready" for e in events(dst_log)), 20)
        # A capped rate stretches round 0 over seconds, so faults land in every phase.
        rate = "0" if trial.static_guest else "20000"
        with open(src_log, "w") as log:
            src = subprocess.Popen(["ip", "netns", "exec", self.link.ns_src, self.pagewire, "src", "--vdev",
                                    f"net_af_packet0,iface={self.link.if_src},framecnt=1024", "--image", self.image,
                                    "--dirty-rate", rate, "--max-gbps", "0.5"] + common,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return src, dst, src_log, dst_log, output


def wait_for(path, ready, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ready():
        time.sleep(0.02)


def kill(process, sig=signal.SIGKILL):
    # `ip netns exec` runs pagewire in its own process group (start_new_session): signal it all.
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


def run_trial(runner, trial, length_s):
    src, dst, src_log, dst_log, output = runner.start(trial)
    started = time.monotonic()
    if trial.fault != "none":
        time.sleep(max(0.0, trial.at_fraction * length_s))
        trial.phase = phase_of(src_log)
        if trial.fault == "kill-src":
            kill(src)
        elif trial.fault == "kill-dst":
            kill(dst)
        elif trial.fault.startswith("interrupt"):
            kill(src if trial.fault == "interrupt-src" else dst, signal.SIGINT)
        else:
            runner.link.down()
            time.sleep(trial.cut_s)
            runner.link.up()
    limit = 60
    # The faulted end first, so that the other's time to follow can be told.
    order = (dst, src) if trial.fault.endswith("dst") else (src, dst)
    ended = []
    for process in order:
        try:
            process.wait(timeout=max(1, limit - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            kill(process)
            process.wait()
            trial.violations.append(f"pid {process.pid} still running after {limit} s")
        ended.append(time.monotonic())
    trial.follow_s = ended[1] - ended[0]
    judge(runner, trial, src, dst, src_log, dst_log, output)
    return time.monotonic() - started


def end_of(process, log, killed, interrupted):
    seen = events(log)
    migrated = next((e for e in seen if e.get("event") in ("migrated", "received")), None)
    failed = next((e for e in seen if e.get("event") == "failed"), None)
    # SIGINT while EAL starts (before the port is up) ends the process as the default
    # handler does; from then on it cancels.
    if killed or process.returncode == -signal.SIGINT:
        return "killed", migrated, failed
    if interrupted and failed and "cancelled: interrupted (SIGINT)" in failed.get("error", ""):
        return "cancelled", migrated, failed
    code = process.returncode
    if code == 0 and migrated:
        return "success", migrated, failed
    if code == 3:
        return "unknown", migrated, failed
    if code == 1 and failed:
        return "failed", migrated, failed
    return f"exit {code}", migrated, failed


def judge(runner, trial, src, dst, src_log, dst_log, output):
    src_end, src_done, src_failed = end_of(src, src_log, trial.fault == "kill-src", trial.fault == "interrupt-src")
    dst_end, dst_done, _ = end_of(dst, dst_log, trial.fault == "kill-dst", trial.fault == "interrupt-dst")
    interrupted = {"interrupt-src": src_end, "interrupt-dst": dst_end}.get(trial.fault)
    if src_end == "cancelled":
        src_end = "failed"  # a cancelled source is a failed one: the guest runs on
    has_output = os.path.exists(output)
    trial.outcome = {"source": src_end, "destination": dst_end, "output": has_output}
    bad = trial.violations.append
    for side, end in (("source", src_end), ("destination", dst_end)):
        if end.startswith("exit"):
            bad(f"the {side} ended with {end} and no outcome of its own")
    if src_end == "success":
        if not has_output:
            bad("the source reported success, and the destination holds no image")
        elif trial.static_guest and not filecmp.cmp(output, runner.image, shallow=False):
            bad("the destination's image differs from the source's")
        if dst_done and src_done and dst_done.get("digest") != src_done.get("digest"):
            bad(f"digests differ: source {src_done.get('digest')}, destination {dst_done.get('digest')}")
    if src_end == "failed":
        if has_output:
            bad("the source failed (its guest runs on), and the destination kept an image: two owners")
        if "keeps running on the source" not in (src_failed or {}).get("error", ""):
            bad("a failed source must say its guest keeps running")
    if dst_end == "success" and not has_output:
        bad("the destination committed without its image on disk")
    if dst_end == "cancelled" and has_output:
        bad("a cancelled destination kept its image")
    if trial.fault.startswith("interrupt") and interrupted in ("failed", "cancelled") and \
            trial.follow_s > OTHER_END_AFTER_INTERRUPT_S:
        bad(f"the other end ended {trial.follow_s:.1f} s after the interrupted one")
    if trial.fault in ("none", "cut-short") and src_end != "success" and trial.phase != "ended":
        bad(f"a {trial.fault} trial must migrate (source: {src_end})")
    if has_output:
        os.remove(output)
    for partial in (output + ".partial",):
        if os.path.exists(partial):
            os.remove(partial)  # a destination killed while writing: never the output itself


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pagewire")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size-mib", type=int, default=128)
    parser.add_argument("--json", action="store_true", help="one JSON object per trial, then a summary")
    parser.add_argument("--keep", action="store_true", help="keep every trial's logs (their folder is printed)")
    options = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("SKIP: needs root and iproute2 for network namespaces")
        return 77
    work = tempfile.mkdtemp(prefix="pagewire-faults-")
    runner = Runner(os.path.abspath(options.pagewire), options.size_mib, work)
    rng = random.Random(options.seed)
    failures = 0
    tally = {}
    try:
        # Unfaulted migrations first: how long one takes, so faults can land anywhere in it
        # (the shorter of two: a busy moment must not push every fault past the end).
        lengths = []
        for guest_writes in (False, True):
            control = Trial(0, random.Random(0), static_guest=not guest_writes)
            control.fault = "none"
            lengths.append(run_trial(runner, control, 0))
            if control.violations:
                print(f"control trial: {control.violations}")
                return 1
        length_s = min(lengths)
        print(f"fault trials: seed {options.seed}, {options.trials} trials, {options.size_mib} MiB, "
              f"an unfaulted migration takes {length_s:.1f} s ({control.outcome['source']})", flush=True)
        for number in range(1, options.trials + 1):
            trial = Trial(number, rng, static_guest=rng.random() < 0.5)
            seconds = run_trial(runner, trial, length_s)
            failures += bool(trial.violations)
            key = (trial.fault, trial.outcome["source"], trial.outcome["destination"])
            tally[key] = tally.get(key, 0) + 1
            record = {"trial": number, "fault": trial.fault, "phase": trial.phase,
                      "guest": "static" if trial.static_guest else "writing", "seconds": round(seconds, 1),
                      **trial.outcome, "violations": trial.violations}
            if trial.fault.startswith("cut"):
                record["cut_s"] = round(trial.cut_s, 2)
            if trial.violations:
                for side in ("src", "dst"):
                    with open(os.path.join(work, f"{side}-{number}.log")) as log:
                        print(f"  {side} log, last lines:\n    " + "    ".join(log.readlines()[-6:]), end="")
            print(json.dumps(record) if options.json else
                  f"trial {number:3}: {trial.fault:9} at {trial.phase:20} -> source {trial.outcome['source']:8} "
                  f"destination {trial.outcome['destination']:8} image {'yes' if trial.outcome['output'] else 'no '}"
                  + ("" if not trial.violations else "  VIOLATED: " + "; ".join(trial.violations)), flush=True)
    finally:
        runner.close()
        if options.keep:
            print(f"logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("outcomes (fault, source, destination: trials):")
    for (fault, source, destination), count in sorted(tally.items()):
        print(f"  {fault:9} {source:8} {destination:8} {count}")
    print(f"{options.trials - failures} trials kept every invariant, {failures} did not")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
