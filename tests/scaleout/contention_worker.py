"""One client process of the Redis contention test: hammer one bucket, print a JSON result line.

Run as ``python contention_worker.py`` with its settings in the environment (the API key is passed
through the environment, never on the command line, where ``ps`` would show it).
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    from flowsync_provider.klaviyo import KlaviyoClient

    start_at = float(os.environ["CONTENTION_START_AT"])
    client = KlaviyoClient(
        os.environ["CONTENTION_API_KEY"],
        base_url=os.environ["CONTENTION_BASE_URL"],
        time_scale=float(os.environ["CONTENTION_TIME_SCALE"]),
        limiter_url=os.environ["CONTENTION_LIMITER_URL"],
        account_key=os.environ["CONTENTION_ACCOUNT_KEY"],
    )
    calls = int(os.environ["CONTENTION_CALLS"])
    kind = os.environ["CONTENTION_KIND"]
    results = 0
    # Every process starts at the same instant so they really compete for the bucket.
    time.sleep(max(0.0, start_at - time.time()))
    try:
        for _ in range(calls):
            if kind == "accounts":
                results += 1 if client.get_account().get("id") else 0
            else:
                report = client.query_flow_values(
                    statistics=["delivered", "opens_unique"],
                    start=os.environ["CONTENTION_START"],
                    end=os.environ["CONTENTION_END"],
                    conversion_metric_id=os.environ["CONTENTION_METRIC_ID"],
                )
                results += 1 if isinstance(report.get("results"), list) else 0
    finally:
        client.close()
    print(json.dumps({"ok": results == calls, "results": results,
                      "diagnostics": client.diagnostics.to_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
