"""Regenerate the vendored parts of Klaviyo's OpenAPI spec (rate limits) from ../shared/klaviyo-openapi.

Run: .venv/bin/python scripts/vendor_spec.py [path/to/stable.json]
Writes plugins/flowsync_provider/core/ratelimits.json: {revision, operations: {"GET /api/flows": {...}}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    spec_path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared/klaviyo-openapi/stable.json"
    spec = json.loads(spec_path.read_text())
    ops: dict[str, dict] = {}
    for path, item in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in item.items():
            if not isinstance(op, dict) or "x-klaviyo-ratelimit" not in op:
                continue
            ops[f"{method.upper()} {path}"] = {
                "operation": op.get("operationId"),
                **op["x-klaviyo-ratelimit"],
            }
    out = {"revision": spec["info"]["version"], "source": "klaviyo/openapi stable.json (MIT)", "operations": ops}
    target = ROOT / "plugins/flowsync_provider/core/ratelimits.json"
    target.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(ops)} operations to {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
