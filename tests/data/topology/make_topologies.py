#!/usr/bin/env python3
"""Regenerates the hwloc topology XMLs the pinning tests load.

Each is an lstopo synthetic topology (hwloc 2.9, `lstopo-no-graphics --of xml --input DESC`)
with a PCI Ethernet device inserted under one package, as hwloc reports a NIC attached to
that socket's root complex. Run from this directory: ./make_topologies.py
"""
import re
import subprocess

TOPOLOGIES = {
    # name: (synthetic description, package holding the NIC or None, NIC PCI address)
    "two-socket-smt-nic-on-1.xml": ("pack:2 [numa] core:8 pu:2", 1, "0000:81:00.0"),
    "one-socket-smt.xml": ("pack:1 [numa] core:4 pu:2", 0, "0000:3b:00.0"),
    "vm-2-cores.xml": ("pack:1 [numa] core:2 pu:1", 0, "0000:00:03.0"),
}

NIC = """    <object type="Bridge" gp_index="{gp}" bridge_type="0-1" depth="0" bridge_pci="0000:[{bus}-{bus}]">
      <object type="PCIDev" gp_index="{gp1}" pci_busid="{busid}" pci_type="0200 [8086:1592] [8086:0002] 02" pci_link_speed="0.000000">
        <info name="PCIVendor" value="Intel Corporation"/>
        <info name="PCIDevice" value="Ethernet Controller E810-C for QSFP"/>
      </object>
    </object>
"""


def make(description, package, busid):
    xml = subprocess.run(["lstopo-no-graphics", "--of", "xml", "--input", description, "-"],
                         check=True, capture_output=True, text=True).stdout
    xml = re.sub(r'\s*<info name="ProcessName" value="[^"]*"/>', "", xml)
    if package is None:
        return xml
    # Insert the NIC as the last child of the package: find the package's closing tag by
    # tracking depth from its opening tag.
    start = re.search(r'<object type="Package" os_index="%d"' % package, xml).start()
    depth, position = 0, start
    for match in re.finditer(r"<object\b[^>]*?(/?)>|</object>", xml[start:]):
        if match.group(0).startswith("</"):
            depth -= 1
        elif match.group(1) != "/":
            depth += 1
        if depth == 0:
            position = start + match.start()
            break
    bus = busid.split(":")[1]
    nic = NIC.format(gp=9001, gp1=9002, bus=bus, busid=busid)
    return xml[:position] + nic.lstrip(" ") + "    " + xml[position:]


for name, (description, package, busid) in TOPOLOGIES.items():
    with open(name, "w") as out:
        out.write(make(description, package, busid))
