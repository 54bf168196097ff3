"""The validator of docs/json-events.schema.json, for the tests that check the CLI's events."""

import json
import os
import sys

try:
    import jsonschema
except ImportError:
    # Debian's python3-jsonschema (tools/run.sh installs it) serves Debian's python3, which
    # may not be the first python3 on PATH: run the calling script again under it.
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("FAIL: python3-jsonschema is missing (tools/run.sh installs it)")
    sys.exit(1)


def load_validator(schema_path):
    with open(schema_path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)
