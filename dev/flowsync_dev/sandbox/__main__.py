"""CLI: ``python -m flowsync_dev.sandbox --port P --seed N [--time-scale S] [--fault-rate F] [--profiles N]
[--report-delay SECONDS]``.

Prints ``FLOWSYNC_SANDBOX_URL=http://127.0.0.1:P`` (flushed) once the server accepts connections,
then serves until SIGINT/SIGTERM. Keys are available from ``GET /__sandbox__/info``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import date

from flowsync_dev.sandbox.server import SandboxServer


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="flowsync-sandbox", description="Klaviyo sandbox server (revision 2026-07-15)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--time-scale", type=float, default=1.0, help="rate-limit windows are divided by this")
    p.add_argument("--fault-rate", type=float, default=0.0, help="probability of an injected fault per request")
    p.add_argument("--profiles", type=int, default=2000)
    p.add_argument("--today", type=date.fromisoformat, default=None, help="pin 'today' (YYYY-MM-DD)")
    p.add_argument("--date-times-utc", action="store_true", help="report date_times as UTC instants")
    p.add_argument("--report-page-size", type=int, default=500)
    p.add_argument("--formula-names", action="store_true",
                   help="name one flow, campaign and profile like spreadsheet formulas (CSV injection demos)")
    p.add_argument("--report-delay", type=float, default=0.0,
                   help="hold every served reporting answer back this many Klaviyo seconds (divided by the time scale)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    srv = SandboxServer(args.seed, time_scale=args.time_scale, fault_rate=args.fault_rate, profiles=args.profiles,
                        today=args.today, host=args.host, port=args.port, date_times_utc=args.date_times_utc,
                        report_page_size=args.report_page_size, formula_names=args.formula_names,
                        report_delay=args.report_delay).start()
    stop = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"FLOWSYNC_SANDBOX_URL={srv.url}", flush=True)
    try:
        stop.wait()
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
