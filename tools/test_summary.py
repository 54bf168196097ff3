#!/usr/bin/env python3
"""Prints 'N passed, N failed' over the meson test logs of the given build directories.

Counts each GoogleTest case meson recorded in meson-logs/testlog.junit.xml (gtest protocol)
and each other test (fuzzers, scripts) as one case. meson's JUnit does not mark a test that
timed out or crashed before writing its report as failed, so every test that
meson-logs/testlog.json says FAIL, TIMEOUT, ERROR or UNEXPECTEDPASS counts at least one
failed case. Exits 1 when anything failed or nothing ran.
"""
import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

BAD = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS", "INTERRUPT"}


def short_name(name: str) -> str:
    """'pagewire:unit / codec' and 'pagewire.codec.Codec' both become 'codec'."""
    if " / " in name:
        return name.split(" / ")[-1]
    parts = name.split(".")
    return parts[1] if len(parts) >= 3 else name


def count(build_dir: str) -> tuple[int, int, int]:
    logs = Path(build_dir) / "meson-logs"
    if not (logs / "testlog.json").exists():
        print(f"test_summary: no test log in {build_dir} (did meson test run?)", file=sys.stderr)
        return 0, 1, 0
    passed, failed, skipped = defaultdict(int), defaultdict(int), 0
    single_case = set()  # scripts and fuzzers: JUnit has one case named after the test
    if (logs / "testlog.junit.xml").exists():
        for suite in ET.parse(logs / "testlog.junit.xml").getroot().iter("testsuite"):
            for case in suite.iter("testcase"):
                if " / " in case.get("name", ""):
                    test = short_name(case.get("name"))
                    single_case.add(test)
                else:
                    test = short_name(suite.get("name", ""))
                if case.find("failure") is not None or case.find("error") is not None:
                    failed[test] += 1
                elif case.find("skipped") is not None:
                    skipped += 1
                else:
                    passed[test] += 1
    for line in (logs / "testlog.json").read_text().splitlines():
        entry = json.loads(line)
        test = short_name(entry["name"])
        if entry["result"] in BAD:
            failed[test] = max(failed[test], 1)
            if test in single_case:
                passed[test] = 0  # its one case, which JUnit counted as passed
    return sum(passed.values()), sum(failed.values()), skipped


def main() -> int:
    totals = [0, 0, 0]
    for build_dir in sys.argv[1:]:
        for i, n in enumerate(count(build_dir)):
            totals[i] += n
    passed, failed, skipped = totals
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
