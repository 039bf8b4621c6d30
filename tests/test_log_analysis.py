import logging
from dataclasses import dataclass

import pandas as pd
import pytest

from tenancy_diag.analysis.logs import (
    COLUMNS,
    SIGNATURE_COLUMNS,
    failure_signatures,
    frame,
    parse_logfmt,
)

CONTRACT = (
    'ts=2026-11-27T01:02:03.123Z level=ERROR msg="reconcile failed" tenant=t-000123 '
    'region=us-east-1 reason=policy_error err="policy service timeout after 2000ms" '
    "trace_id=4bf92f3577b34da6"
)


# -- parse_logfmt ---------------------------------------------------------------------------
def test_parses_the_contract_line():
    assert parse_logfmt(CONTRACT) == {
        "ts": "2026-11-27T01:02:03.123Z",
        "level": "ERROR",
        "msg": "reconcile failed",
        "tenant": "t-000123",
        "region": "us-east-1",
        "reason": "policy_error",
        "err": "policy service timeout after 2000ms",
        "trace_id": "4bf92f3577b34da6",
    }


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # escaped quotes and backslashes inside a quoted value
        (r'err="object \"t-1\" was modified" k=v', {"err": 'object "t-1" was modified', "k": "v"}),
        (r'path="C:\\tmp\\x"', {"path": r"C:\tmp\x"}),
        (r'msg="two\nlines\ttab"', {"msg": "two\nlines\ttab"}),
        # bare keys and empty values
        ("debug level=INFO", {"debug": "", "level": "INFO"}),
        ('a= b="" c', {"a": "", "b": "", "c": ""}),
        # values may contain '=' when unquoted (URLs, base64 padding)
        ("url=http://x/?a=1&b=2 sig=abc==", {"url": "http://x/?a=1&b=2", "sig": "abc=="}),
        # the first occurrence of a key wins, so a later stray one cannot overwrite ts
        ("ts=1 ts=2", {"ts": "1"}),
        # unterminated quote runs to the end of the line
        ('msg="never closed k=v', {"msg": "never closed k=v"}),
        # garbage is skipped, not fatal
        ('=oops "stray quote k=v', {"oops": "", "stray": "", "quote": "", "k": "v"}),
        ("", {}),
        ("   ", {}),
        ("not logfmt at all", {"not": "", "logfmt": "", "at": "", "all": ""}),
        # unicode survives
        ('msg="café ☕" who=zoë', {"msg": "café ☕", "who": "zoë"}),
    ],
)
def test_parse_logfmt_edge_cases(line, expected):
    assert parse_logfmt(line) == expected


def test_trailing_backslash_in_unterminated_quote_does_not_raise():
    assert parse_logfmt('msg="abc\\')["msg"].startswith("abc")


# -- frame ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    line: str
    pod: str
    container: str
    previous: bool
    region: str | None


def test_frame_columns_types_and_order():
    items = [
        Item("ts=2026-11-27T01:00:05.000Z level=info msg=late", "p1", "c", False, "eu-west-1"),
        {"line": CONTRACT, "pod": "p2", "container": "c", "previous": True, "region": "eu-west-1"},
        {"line": "garbage without time", "pod": "p3"},
    ]
    df = frame(items)
    assert tuple(df.columns) == COLUMNS
    assert str(df["ts"].dtype).startswith("datetime64") and str(df["ts"].dt.tz) == "UTC"
    # oldest first, the unparseable time last
    assert df["pod"].tolist() == ["p1", "p2", "p3"]
    assert pd.isna(df.loc[2, "ts"]) and df.loc[2, "previous"] == False  # noqa: E712
    # the line's own region wins over the item's; level is upper-cased
    assert df.loc[1, "region"] == "us-east-1" and df.loc[0, "region"] == "eu-west-1"
    assert df.loc[0, "level"] == "INFO"
    assert df.loc[1, "err"] == "policy service timeout after 2000ms"
    assert df.loc[1, "tenant"] == "t-000123" and bool(df.loc[1, "previous"]) is True


def test_frame_of_nothing_has_the_columns():
    df = frame([])
    assert tuple(df.columns) == COLUMNS and df.empty


def test_frame_rejects_items_without_line():
    with pytest.raises(TypeError, match="mapping or a dataclass"):
        frame(["just a string"])


# -- failure_signatures ---------------------------------------------------------------------
def _line(second, tenant, reason, err, **extra):
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    return (
        f'ts=2026-11-27T01:00:{second:02d}.000Z level=ERROR msg="reconcile failed" '
        f'tenant={tenant} region=us-east-1 reason={reason} err="{err}" {fields} '
        f"trace_id={second:016x}"
    ).replace("  ", " ")


def _df(lines, pod="pod-a"):
    return frame(
        {"line": line, "pod": pod, "container": "c", "region": "us-east-1"} for line in lines
    )


def test_lines_differing_only_in_tenant_and_numbers_are_one_signature():
    lines = [
        _line(
            i,
            f"t-{i * 7:06d}",
            "policy_error",
            f"policy service timeout after {2000 + i}ms",
            queue=i * 13,
            peer=f"10.0.{i}.7:8443",
            obj=f"4bf92f35{i:08x}",
        )
        for i in range(1, 30)
    ]
    sig = failure_signatures(_df(lines))
    assert len(sig) == 1
    row = sig.iloc[0]
    assert row["count"] == 29 and row["tenants"] == 29
    assert "<DURATION>" in row["signature"] and "reason=policy_error" in row["signature"]
    assert "t-0" not in row["signature"]


def test_different_errors_stay_apart():
    lines = []
    for i in range(20):
        lines.append(_line(i, "t-000001", "policy_error", "policy service timeout after 2000ms"))
        lines.append(_line(i, "t-000002", "conflict", "the object has been modified"))
        lines.append(_line(i, "t-000003", "throttled", "client-side rate limiter: wait 5s"))
    lines.append(
        _line(59, "t-000004", "policy_error", "dial tcp 10.1.2.3:8443: connect: connection refused")
    )
    sig = failure_signatures(_df(lines))
    assert len(sig) == 4
    assert sig["count"].tolist() == [20, 20, 20, 1]
    assert sig["signature"].str.contains("connection refused").tolist()[-1]


def test_http_codes_are_kept_apart_and_shown_unmasked():
    lines = [
        f'ts=2026-11-27T01:00:{i:02d}Z level=ERROR msg="webhook delivery failed" '
        f"tenant=t-00000{i % 3} endpoint=hooks.example.net code={code} "
        f'err="upstream returned {code}"'
        for i, code in enumerate([503] * 6 + [502] * 3)
    ]
    sig = failure_signatures(_df(lines))
    assert sig["count"].tolist() == [6, 3]
    assert "code=503" in sig.loc[0, "signature"] and "code=502" in sig.loc[1, "signature"]


def test_varying_endpoint_generalises_with_its_key_name():
    lines = [
        f'ts=2026-11-27T01:00:{i:02d}Z level=ERROR msg="webhook delivery failed" tenant=t-1 '
        f'code=502 err="upstream returned 502" endpoint=hooks.{name}.example.com attempt=1'
        for i, name in enumerate(["a", "bb", "ccc", "dddd", "e"])
    ]
    sig = failure_signatures(_df(lines))
    assert len(sig) == 1 and "endpoint=<*>" in sig.loc[0, "signature"]


def test_signature_columns_and_aggregates():
    lines = [
        _line(i, t, "policy_error", "policy service timeout after 2000ms")
        for i, t in enumerate(["t-000009"] * 5 + ["t-000001"] * 3 + ["t-000005"])
    ]
    df = pd.concat([_df(lines[:4], pod="pod-a"), _df(lines[4:], pod="pod-b")])
    df = pd.concat([df, _df(['ts=2026-11-27T01:00:00Z level=INFO msg="fine" tenant=t-1'])])
    sig = failure_signatures(df)
    assert tuple(sig.columns) == SIGNATURE_COLUMNS
    row = sig.iloc[0]
    assert row["count"] == 9 and row["tenants"] == 3 and row["pods"] == 2
    assert row["top_tenants"] == ["t-000009", "t-000001", "t-000005"]
    assert row["first_seen"] == pd.Timestamp("2026-11-27T01:00:00Z")
    assert row["last_seen"] == pd.Timestamp("2026-11-27T01:00:08Z")
    assert row["regions"] == ["us-east-1"] and row["example"] == lines[0]


def test_level_filter_and_empty_answer():
    lines = [
        'ts=2026-11-27T01:00:00Z level=WARN msg="step stuck" job_id=job-1a2b3c4d step=verify',
        'ts=2026-11-27T01:00:09Z level=WARN msg="step stuck" job_id=job-99aa00ff step=verify',
    ]
    assert failure_signatures(_df(lines)).empty
    assert tuple(failure_signatures(_df(lines)).columns) == SIGNATURE_COLUMNS
    warn = failure_signatures(_df(lines), level="WARN")
    assert len(warn) == 1 and "job_id=job-<HEX>" in warn.loc[0, "signature"]


def test_drain3_is_configured_in_code_and_quiet(tmp_path, monkeypatch, caplog):
    # A drain3.ini in the working directory must change nothing.
    (tmp_path / "drain3.ini").write_text("[DRAIN]\nsim_th = 0.01\ndepth = 3\n")
    monkeypatch.chdir(tmp_path)
    lines = [
        _line(1, "t-1", "policy_error", "policy service timeout after 2000ms"),
        _line(2, "t-2", "policy_error", "totally different words here now"),
    ]
    with caplog.at_level(logging.INFO):
        sig = failure_signatures(_df(lines))
    assert len(sig) == 2
    assert not [r for r in caplog.records if r.name.startswith("drain3")]


def test_tenants_where_ranks_tenants_of_matching_error_lines():
    from tenancy_diag.analysis.logs import frame, tenants_where

    lines = [
        {
            "line": 'ts=2026-11-27T01:00:00Z level=ERROR msg="request throttled" tenant=t-000002 '
            "client_id=cli-a code=429",
            "pod": "p",
            "container": "c",
            "previous": False,
            "region": "r",
        },
        {
            "line": 'ts=2026-11-27T01:00:01Z level=ERROR msg="request throttled" tenant=t-000001 '
            "client_id=cli-a code=429",
            "pod": "p",
            "container": "c",
            "previous": False,
            "region": "r",
        },
        {
            "line": 'ts=2026-11-27T01:00:02Z level=ERROR msg="request throttled" tenant=t-000001 '
            "client_id=cli-a code=429",
            "pod": "p",
            "container": "c",
            "previous": False,
            "region": "r",
        },
        {
            "line": 'ts=2026-11-27T01:00:03Z level=ERROR msg="request throttled" tenant=t-000009 '
            "client_id=cli-b code=429",
            "pod": "p",
            "container": "c",
            "previous": False,
            "region": "r",
        },
        {
            "line": 'ts=2026-11-27T01:00:04Z level=INFO msg="ok" tenant=t-000008 client_id=cli-a',
            "pod": "p",
            "container": "c",
            "previous": False,
            "region": "r",
        },
    ]
    df = frame(lines)
    assert tenants_where(df, "client_id", ["cli-a"]) == ["t-000001", "t-000002"]
    assert tenants_where(df, "client_id", []) == []
