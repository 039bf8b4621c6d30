"""The public API's metrics: requests per route and code, latency per path, gateway rejections.

Rate-limit saturation is a misbehaving client (or a few) flooding the bulk sync route of the
incident region; the gateway rejects most of the flood and some ordinary calls besides.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from tenancy_diag.sandbox.metric_history.families import (
    Family,
    FloatArray,
    Histogram,
    IntArray,
    Labels,
    Series,
)
from tenancy_diag.sandbox.metric_history.latency import Latency, latency_histogram
from tenancy_diag.sandbox.metric_history.noise import (
    noisy_counts,
    sparse_counters,
    split,
    with_uptime,
)
from tenancy_diag.sandbox.metric_history.world import World, per_region, region_sums
from tenancy_diag.sandbox.topology import CLIENT_IDS, ROUTES

HTTP_CODES = ("200", "201", "202", "400", "404", "409", "429", "500", "502", "503")
PATHS = tuple(sorted({path for path, _ in ROUTES}))
_ROUTE_SHARE = (0.25, 0.40, 0.15, 0.12, 0.08)
_ROUTE_MEDIAN_MS = (45.0, 20.0, 60.0, 70.0, 120.0)
_BULK_SYNC = 4  # index of the bulk sync route in ROUTES: the one a misbehaving client floods
_CLIENT_SHARE = (0.25, 0.15, 0.10, 0.10, 0.20, 0.10, 0.05, 0.05)
_ERROR_P = {
    "400": 0.004,
    "404": 0.01,
    "409": 0.002,
    "429": 0.003,
    "500": 0.0004,
    "502": 0.0002,
    "503": 0.0002,
}


class _RouteRows(NamedTuple):
    """One row per (region, route) of ROUTES, region-major."""

    region: IntArray
    route: IntArray


def _code_probabilities(route: int, extra_429: FloatArray) -> FloatArray:
    """(steps, codes) for one route; the success code depends on the method."""
    path, method = ROUTES[route]
    ok = {"GET": "200", "PATCH": "200"}.get(method, "202" if route == _BULK_SYNC else "201")
    probs = np.zeros((len(extra_429), len(HTTP_CODES)))
    for code, p in _ERROR_P.items():
        if (code == "404" and "{id}" not in path) or (code == "409" and method != "PATCH"):
            continue
        probs[:, HTTP_CODES.index(code)] = p
    probs[:, HTTP_CODES.index("429")] += extra_429
    probs[:, HTTP_CODES.index(ok)] = 1.0 - probs.sum(axis=1)
    return probs


def metrics(world: World) -> dict[str, Family]:
    """The public API families, by metric key as in parameters/signals.yaml."""
    rng = world.rng("api")
    saturation = world.fault("rate_limit_saturation")
    rows = _RouteRows(
        per_region(world, len(ROUTES)), np.tile(np.arange(len(ROUTES)), len(world.regions))
    )
    incident = world.in_incident(rows.region)[:, None]
    base = (5.0 + 0.02 * world.region_weight())[rows.region][:, None] * world.diurnal[rows.region]
    mean = world.step_s * base * np.array(_ROUTE_SHARE)[rows.route][:, None]
    requests = noisy_counts(rng, mean)
    by_code = np.zeros((*requests.shape, len(HTTP_CODES)), dtype=np.int64)
    for row, route in enumerate(rows.route.tolist()):
        # A saturated gateway also rejects some ordinary calls of the region.
        extra_429 = 0.02 * saturation * incident[row, 0]
        by_code[row] = rng.multinomial(requests[row], _code_probabilities(route, extra_429))
    # The misbehaving client's bulk sync: extra calls, most of them rejected by the gateway.
    flood = noisy_counts(
        rng, mean * 4.0 * saturation * incident * (rows.route == _BULK_SYNC)[:, None]
    )
    flood_429 = rng.binomial(flood, 0.6)
    ordinary_429 = region_sums(world, rows.region, by_code[..., HTTP_CODES.index("429")])
    ok_code = np.argmax(by_code.sum(axis=1), axis=1)
    by_code[np.arange(len(rows.route)), :, ok_code] += flood - flood_429
    by_code[..., HTTP_CODES.index("429")] += flood_429
    return {
        **_http_counters(world, rng, rows, by_code),
        "http_request_duration_ms": _api_latency(world, rng, rows, by_code),
        "gateway_throttled_total": _gateway(
            world, rng, ordinary_429, region_sums(world, rows.region, flood_429)
        ),
        "gateway_rate_limit_burst_multiplier": Series(
            {"region": list(world.regions)},
            np.ones((len(world.regions), world.steps)),
            integer=False,
        ),
    }


def _by_path(world: World, rows: _RouteRows, values: IntArray) -> tuple[IntArray, Labels]:
    """Sum (region, route) rows into (region, path) rows: GET and PATCH of one path add up."""
    path = np.array([PATHS.index(ROUTES[r][0]) for r in rows.route.tolist()], dtype=np.int64)
    out = np.zeros((len(world.regions) * len(PATHS), *values.shape[1:]), dtype=np.int64)
    np.add.at(out, rows.region * len(PATHS) + path, values)
    labels = {
        "region": [r for r in world.regions for _ in PATHS],
        "route": list(PATHS) * len(world.regions),
    }
    return out, labels


def _http_counters(
    world: World, rng: np.random.Generator, rows: _RouteRows, by_code: IntArray
) -> dict[str, Family]:
    labels = {
        "region": world.names(rows.region),
        "route": [ROUTES[r][0] for r in rows.route.tolist()],
        "method": [ROUTES[r][1] for r in rows.route.tolist()],
    }
    requests = with_uptime(rng, by_code)
    errors, error_labels = _by_path(world, rows, requests)
    errors[..., [i for i, c in enumerate(HTTP_CODES) if int(c) < 400]] = 0
    return {
        "http_requests_total": sparse_counters(requests, labels, "code", HTTP_CODES),
        "http_errors_total": sparse_counters(errors, error_labels, "code", HTTP_CODES),
    }


def _api_latency(
    world: World, rng: np.random.Generator, rows: _RouteRows, by_code: IntArray
) -> Histogram:
    # The gateway answers 429 itself, so the backend only times the rest.
    served = by_code.sum(axis=2) - by_code[..., HTTP_CODES.index("429")]
    observations, labels = _by_path(world, rows, served)
    path_region = np.arange(len(observations)) // len(PATHS)
    slower = (
        1.0 + 0.2 * world.fault("rate_limit_saturation") * world.in_incident(path_region)[:, None]
    )
    mixture = []
    for route, median in enumerate(_ROUTE_MEDIAN_MS):
        # Each method of a path is one component, weighted by its share of the path's calls.
        calls, _ = _by_path(world, rows, served * (rows.route == route)[:, None])
        mixture.append(Latency(calls / np.maximum(observations, 1), median * slower, 0.6))
    return latency_histogram(rng, labels, observations, mixture)


def _gateway(world: World, rng: np.random.Generator, ordinary: IntArray, flood: IntArray) -> Series:
    """429s by client: ordinary rejections spread over all clients, the flood on its culprits.

    Both arguments are (regions, steps) counts of rejected calls.
    """
    by_client = with_uptime(rng, split(rng, ordinary, _CLIENT_SHARE))
    culprits = [CLIENT_IDS.index(c) for c in world.scenario.truth.client_ids]
    if culprits:
        by_client[..., culprits] += split(rng, flood, [1.0] * len(culprits))
    return sparse_counters(by_client, {"region": list(world.regions)}, "client_id", CLIENT_IDS)
