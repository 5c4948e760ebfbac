"""The relay's lag under a load, from the service's own ``sessiond_relay_lag_seconds`` histogram.

Scraped from ``GET /metrics`` before and after the load; the difference of the cumulative
buckets is this load's histogram, and its p99 is the upper bound of the bucket holding it
(the histogram's resolution, not an interpolation).
"""

from __future__ import annotations

import math
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

METRIC = "sessiond_relay_lag_seconds"
Buckets = dict[tuple[str, float], float]


def scrape(service_url: str, *, timeout_s: float = 10.0) -> Buckets:
    """(path, upper bound) -> cumulative count, for every path (writer, repair)."""
    with urllib.request.urlopen(f"{service_url}/metrics", timeout=timeout_s) as response:
        text = response.read().decode()
    found: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.name == f"{METRIC}_bucket":
                key = (sample.labels.get("path", ""), float(sample.labels["le"]))
                found[key] = found.get(key, 0.0) + sample.value
    return found


def summary(before: Buckets, after: Buckets) -> str:
    """``writer: n passes, p99 <= x ms; repair: m`` for the load between the two scrapes."""
    parts = []
    for path in sorted({path for path, _ in after}):
        bounds = sorted(le for p, le in after if p == path)
        counts = [after[(path, le)] - before.get((path, le), 0.0) for le in bounds]
        total = counts[-1] if counts else 0.0
        if total <= 0:
            continue
        rank = math.ceil(0.99 * total)
        p99 = next(le for le, count in zip(bounds, counts, strict=True) if count >= rank)
        shown = "> 30 s" if math.isinf(p99) else f"<= {p99 * 1000:g} ms"
        parts.append(f"{path}: {total:,.0f} passes, p99 {shown}")
    return "; ".join(parts) or "no relay pass observed"
