"""Time the top-10-tenants range queries against a running sandbox (or any Prometheus).

    tenancy-diag sandbox up --scenario webhook_storm --tenants 10000
    eval "$(tenancy-diag sandbox env)"
    python bench/topk_query.py --repeat 3   # reads $TENANCY_DIAG_PROMETHEUS_URL and _END

Each query is `topk(10, sum by (region, tenant) (rate(...[5m])))` over 3 h at the step the
library chooses (aggregated server-side, as the notebooks run it). Prints seconds per run.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import timedelta

from tenancy_diag import signals
from tenancy_diag.querying import Metrics
from tenancy_diag.settings import PrometheusSettings
from tenancy_diag.sources.prometheus import PrometheusSource
from tenancy_diag.times import parse_time

QUERIES = ("controller.top_tenants", "webhook.top_tenants", "policy.top_tenants")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus-url", default=os.environ.get("TENANCY_DIAG_PROMETHEUS_URL"))
    parser.add_argument("--end", default=os.environ.get("TENANCY_DIAG_END", "now"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = PrometheusSource(PrometheusSettings(args.prometheus_url, timeout_s=60))
    metrics = Metrics(source, signals.load())
    end = parse_time(args.end)
    for key in QUERIES:
        times, tenants = [], 0
        for _ in range(args.repeat):
            started = time.perf_counter()
            df = metrics.range(key, end - timedelta(hours=3), end, window="5m", k=10)
            times.append(time.perf_counter() - started)
            tenants = df["tenant"].nunique() if "tenant" in df else 0
        print(f"{key:26} {' '.join(f'{t:.2f}s' for t in times)}  ({tenants} distinct tenants)")


if __name__ == "__main__":
    main()
