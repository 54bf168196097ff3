#!/usr/bin/env python3
"""Prints 'N passed, N failed' over the meson test logs of the given build directories.

Counts each GoogleTest case that meson recorded in meson-logs/testlog.junit.xml (gtest
protocol), and each non-gtest test (fuzzers) as one case. A test binary that crashed before
writing its report is one failed case. Exits 1 when anything failed or nothing ran.
"""
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def count(build_dir: str) -> tuple[int, int, int]:
    log = Path(build_dir) / "meson-logs" / "testlog.junit.xml"
    if not log.exists():
        print(f"test_summary: no test log in {build_dir} (did meson test run?)", file=sys.stderr)
        return 0, 1, 0
    passed = failed = skipped = 0
    for case in ET.parse(log).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main() -> int:
    totals = [0, 0, 0]
    for build_dir in sys.argv[1:]:
        for i, n in enumerate(count(build_dir)):
            totals[i] += n
    passed, failed, skipped = totals
    line = f"{passed} passed, {failed} failed"
    print(line + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
