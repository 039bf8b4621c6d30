"""The delete call's options, from its query string and its ``DeleteOptions`` body.

As the API server reads them: the query's ``dryRun`` and ``gracePeriodSeconds`` win over the
body's, only ``dryRun=All`` is understood, and a negative grace period counts as one second.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tenancy_diag.sandbox.kube_api.errors import bad_request, invalid_delete_options

#: A pod's default ``terminationGracePeriodSeconds``, used when the caller names none.
DEFAULT_GRACE_S = 30
_PROPAGATION = ("Orphan", "Background", "Foreground")


@dataclass(frozen=True)
class DeleteOptions:
    dry_run: bool = False
    grace_s: int = DEFAULT_GRACE_S
    uid: str | None = None  # preconditions.uid: delete only this incarnation of the name
    #: Orphan, Background or Foreground; None leaves it to the resource's default.
    propagation: str | None = None


def delete_options(query: Mapping[str, str], body: bytes) -> DeleteOptions:
    """The options a delete call carries, validated as the API server validates them."""
    sent = _body(body)
    dry_run = [query["dryRun"]] if "dryRun" in query else sent.get("dryRun") or []
    if not isinstance(dry_run, list) or any(v != "All" for v in dry_run):
        raise invalid_delete_options(
            "dryRun", dry_run, f'Unsupported value: {json.dumps(dry_run)}: supported values: "All"'
        )
    grace = query.get("gracePeriodSeconds", sent.get("gracePeriodSeconds"))
    try:
        grace_s = DEFAULT_GRACE_S if grace is None else int(grace)
    except (TypeError, ValueError):
        raise bad_request(f'strconv.ParseInt: parsing "{grace}": invalid syntax') from None
    propagation = query.get("propagationPolicy", sent.get("propagationPolicy"))
    if propagation is not None and propagation not in _PROPAGATION:
        raise invalid_delete_options(
            "propagationPolicy",
            propagation,
            f'Unsupported value: "{propagation}": supported values: '
            + ", ".join(f'"{p}"' for p in _PROPAGATION),
        )
    preconditions = sent.get("preconditions") or {}
    uid = preconditions.get("uid") if isinstance(preconditions, dict) else None
    return DeleteOptions(bool(dry_run), 1 if grace_s < 0 else grace_s, uid, propagation)


def _body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise bad_request("the body of a delete must be a DeleteOptions object")
    return body
