"""Run every benchmark in one process, print the tables and write bench/RESULTS.md."""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

from bench import common
from bench import flows as flows_bench

OUT = Path(__file__).resolve().parent / "RESULTS.md"


def main() -> int:
    started = time.monotonic()
    sections = []
    raw: dict[str, object] = {}
    flow_results, flow_table = flows_bench.run()
    raw["flows"] = flow_results
    sections.append("## Flow sync: runbook per-day flow-values vs flowsync series\n\n"
                    "Same code path as the operators (`flowsync_provider.syncs`), bare client, sandbox with the "
                    f"spec's limits compressed {common.TIME_SCALE:g}×. Floor = the least time the calls need under "
                    "the limits of every bucket the run touched (real seconds).\n\n" + flow_table)
    for name in ("campaigns", "audience"):
        try:
            module = __import__(f"bench.{name}", fromlist=["run"])
        except ImportError:
            continue
        result = module.run()
        raw[name] = result.get("results", result) if isinstance(result, dict) else result
        if isinstance(result, dict) and "markdown" in result:
            sections.append(result["markdown"])
    header = (f"# flowsync benchmarks\n\nMeasured by `make bench` on {platform.machine()} / Python "
              f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}; total {time.monotonic() - started:.0f} s. "
              "Ratios are measured side by side in one run; machines are noisy, so compare ratios, not seconds.\n")
    text = header + "\n" + "\n\n".join(sections) + "\n\n<details><summary>raw</summary>\n\n```json\n" + \
        json.dumps(raw, indent=1, default=str) + "\n```\n</details>\n"
    OUT.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
