"""Proof that every kind of secret the runbook warns about leaves no trace after redaction,
while the text a diagnosis needs (keys, hosts, tenants, trace ids, durations) survives."""

from __future__ import annotations

import json

import pytest

from tenancy_diag.errors import ConfigError
from tenancy_diag.redacting import BUILTIN_PATTERNS, MASK, Redactor, default_redactor
from tenancy_diag.sandbox.secrets import PLANTED, carrier
from tenancy_diag.settings import ENV_REDACT_PATTERNS, extra_redaction_patterns

# The contract's own example line: nothing in it is secret, so nothing may change.
ORDINARY = (
    'ts=2026-11-27T01:02:03.123Z level=ERROR msg="reconcile failed" tenant=t-000123 '
    'region=us-east-1 reason=policy_error err="policy service timeout after 2000ms" '
    "trace_id=4bf92f3577b34da6"
)
DLQ_BODY = json.dumps(
    {
        "tenant_id": "t-000123",
        "region": "us-east-1",
        "kind": "webhook",
        "event_type": "tenant.updated",
        "sequence": 48211,
        "endpoint": "hooks.example.net",
        "error_code": "503",
        "attempts": 5,
        "first_failed_at": "2026-11-27T00:58:10Z",
        "last_error": "upstream returned 503",
    }
)
# Survivors every planted line must keep.
CONTEXT = ("tenant=t-000123", "region=us-east-1", "trace_id=4bf92f3577b34da6", "took=2000ms")

JWT = "eyJhbGciOiJIUzI1NiJ9.dGVuYW5jeS1kaWFn.c2lnbmF0dXJlLXZhbHVl"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

# (case id, text carrying the secret, the secret, text that must survive)
SHAPES: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("auth-header", f"Authorization: Bearer {JWT}", JWT, ("Authorization: Bearer",)),
    ("auth-header-short", "Authorization: Bearer x", " x", ("Authorization: Bearer",)),
    ("auth-header-json", f'{{"Authorization": "Bearer {JWT}"}}', JWT, ('"Authorization"',)),
    ("auth-basic", "authorization: Basic dGVuYW5jeTpodW50ZXIy", "dGVuYW5jeTpodW50ZXIy", ()),
    ("bearer-prose", f"retrying with bearer {JWT} against api", JWT, ("against api",)),
    ("bearer-logfmt", "bearer=opaque_Tok3n_value_123 tenant=t-1", "opaque_Tok3n", ("tenant=t-1",)),
    ("bearer-json", '{"bearer": "opaque-token-9f8e7d"}', "opaque-token-9f8e7d", ('"bearer"',)),
    ("token-json", '{"token": "tok_live_4f9a8b7c6d", "tenant_id": "t-9"}', "tok_live", ("t-9",)),
    ("access-token-json", '{"access_token":"at.9f8e7d6c5b"}', "at.9f8e7d6c5b", ("access_token",)),
    ("token-env", "TENANCY_API_TOKEN=K9xPl2QwErTy", "K9xPl2QwErTy", ("TENANCY_API_TOKEN=",)),
    ("token-query", "GET /hook?token=abc123xyz&tenant=t-5", "abc123xyz", ("&tenant=t-5",)),
    ("akia", "key=AKIAIOSFODNN7EXAMPLE region=eu-west-1", "AKIAIOSFODNN7EXAMPLE", ("key=",)),
    ("asia", '{"AccessKeyId": "ASIAEXAMPLEFAKE00001"}', "ASIAEXAMPLEFAKE00001", ("AccessKeyId",)),
    ("aws-secret-logfmt", f"aws_secret_access_key={AWS_SECRET}", AWS_SECRET, ("aws_secret",)),
    ("aws-secret-json", f'{{"aws_secret_access_key": "{AWS_SECRET}"}}', AWS_SECRET, ()),
    ("aws-secret-sts", f'{{"SecretAccessKey":"{AWS_SECRET}"}}', AWS_SECRET, ("SecretAccessKey",)),
    ("aws-secret-env", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET, ("AWS_SECRET_ACC",)),
    ("aws-secret-export", f'export AWS_SECRET_ACCESS_KEY="{AWS_SECRET}"', AWS_SECRET, ("export",)),
    ("whsec-bare", "sig key whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ok", "whsec_MfKQ9r8", ("ok",)),
    ("signing-logfmt", "signing_secret=s1gn-me-please tenant=t-7", "s1gn-me-please", ("t-7",)),
    ("signing-json", '{"signing_secret": "s1gn-me-please"}', "s1gn-me-please", ('"signing_',)),
    ("webhook-secret-yaml", "webhook_secret: hunter2hunter2", "hunter2hunter2", ("webhook_",)),
    (
        "postgres-url",
        "dsn=postgres://tenancy:pg-s3cret@db.internal:5432/t",
        "pg-s3cret",
        ("postgres://tenancy:", "@db.internal:5432/t"),
    ),
    (
        "https-url",
        "url=https://admin:Hunter2!x@hooks.example.net/v1",
        "Hunter2!x",
        ("https://admin:", "@hooks.example.net/v1"),
    ),
    (
        "amqp-url",
        "broker=amqp://guest:mq-pass-42@rabbit.internal:5672/vh",
        "mq-pass-42",
        ("amqp://guest:", "@rabbit.internal:5672/vh"),
    ),
    ("redis-url-no-user", "cache=redis://:r3dis-pw@cache:6379/0", "r3dis-pw", ("@cache:6379/0",)),
    ("password-json", '{"password": "pa ss,word"}', "pa ss,word", ('"password"',)),
    ("password-repr", "{'password': 'Tr0ub4dor'}", "Tr0ub4dor", ("'password'",)),
    (
        "escaped-json-in-logfmt",
        'body="{\\"token\\": \\"esc-tok-77\\", \\"n\\": 1}"',
        "esc-tok-77",
        ('\\"n\\": 1',),
    ),
]


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_planted_secret_is_gone_and_its_line_survives(redactor: Redactor, kind: str) -> None:
    line = f'level=WARN msg="outbound call" {CONTEXT[0]} {carrier(kind)} {" ".join(CONTEXT[1:])}'
    out = redactor.redact(line)
    assert PLANTED[kind] not in out
    assert MASK in out
    for survivor in CONTEXT:
        assert survivor in out
    # The key naming the secret stays, so a reader sees what was logged.
    key = carrier(kind).split("=", 1)[0]
    assert out.count(key) == line.count(key)


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_planted_secret_inside_a_json_string_leaves_valid_json(
    redactor: Redactor, kind: str
) -> None:
    # As a DLQ body carries it: the carrier's own quotes are escaped inside a JSON string.
    body = json.dumps({"tenant_id": "t-000123", "last_error": f"upstream 503; {carrier(kind)}"})
    out = redactor.redact(body)
    assert PLANTED[kind] not in out
    parsed = json.loads(out)
    assert parsed["tenant_id"] == "t-000123"
    assert parsed["last_error"].startswith("upstream 503; ")
    assert MASK in parsed["last_error"]


def test_every_planted_kind_has_a_builtin_pattern() -> None:
    assert set(PLANTED) <= {kind for kind, _ in BUILTIN_PATTERNS}


@pytest.mark.parametrize(
    ("text", "secret", "survivors"), [s[1:] for s in SHAPES], ids=[s[0] for s in SHAPES]
)
def test_secret_shapes(
    redactor: Redactor, text: str, secret: str, survivors: tuple[str, ...]
) -> None:
    out = redactor.redact(text)
    assert secret not in out, out
    assert MASK in out
    for survivor in survivors:
        assert survivor in out, out


@pytest.mark.parametrize("text", [s[1] for s in SHAPES], ids=[s[0] for s in SHAPES])
def test_redacting_twice_changes_nothing(redactor: Redactor, text: str) -> None:
    once = redactor.redact(text)
    assert redactor.redact(once) == once


@pytest.mark.parametrize(
    "text",
    [
        ORDINARY,
        DLQ_BODY,
        "span_id=00f067aa0ba902b7 request_id=9b2c1e44-4f3a-4c55-8d5e-1f0c2b7a9e31",
        'msg="bearer authentication failed" code=401',
        'msg="token expired" max_tokens=5 token_count=3 secret_name=tenancy-db',
        'msg="policy cache invalidated" key=tenant:t-000123 kind=access',
        "url=http://prometheus.internal:9090/api/v1/query_range endpoint=hooks.example.net",
        'tenant=t-000123 msg="user alice@example.com rotated keys" duration_ms=1532.5',
        '{"token": null, "password": true, "pod": "tenancy-controller-7d9f8-abcde"}',
    ],
)
def test_ordinary_text_is_untouched(redactor: Redactor, text: str) -> None:
    assert redactor.redact(text) == text


def test_json_bodies_stay_parseable() -> None:
    body = json.dumps(
        {
            "tenant_id": "t-000123",
            "token": "tk-9f8e7d",
            "attempts": 5,
            "headers": {"Authorization": f"Bearer {JWT}"},
        }
    )
    out = Redactor().redact(body)
    parsed = json.loads(out)
    assert parsed == {
        "tenant_id": "t-000123",
        "token": MASK,
        "attempts": 5,
        "headers": {"Authorization": f"Bearer {MASK}"},
    }


def test_redact_all_keeps_order_and_length() -> None:
    lines = [ORDINARY, carrier("aws_access_key_id"), ORDINARY]
    out = Redactor().redact_all(lines)
    assert out == [ORDINARY, f"aws_access_key_id={MASK}", ORDINARY]


def test_extra_patterns_from_configuration() -> None:
    redactor = Redactor(extra_patterns=(r"cust-[0-9a-f]{16}", r"(?P<keep>x-internal-key: )\S+"))
    out = redactor.redact("tenant=t-000123 ref=cust-0123456789abcdef x-internal-key: abc.def")
    assert out == f"tenant=t-000123 ref={MASK} x-internal-key: {MASK}"
    # Built-in patterns still apply beside the extra ones.
    assert PLANTED["aws_access_key_id"] not in redactor.redact(carrier("aws_access_key_id"))


def test_extra_patterns_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_REDACT_PATTERNS, "cust-[0-9a-f]{16}\n\n  \nacct#\\d{6}\n")
    assert extra_redaction_patterns() == ("cust-[0-9a-f]{16}", "acct#\\d{6}")
    out = default_redactor().redact(f"ref=cust-0123456789abcdef acct#004211 {ORDINARY}")
    assert out == f"ref={MASK} {MASK} {ORDINARY}"


def test_extra_patterns_from_an_explicit_environment_mapping() -> None:
    env = {ENV_REDACT_PATTERNS: r"emp-\d{5}"}
    assert Redactor(extra_redaction_patterns(env)).redact("by emp-12345") == f"by {MASK}"


@pytest.mark.parametrize("bad", ["cust-[0-9a-f", "(unclosed", "*star"])
def test_invalid_extra_pattern_is_a_config_error_naming_it(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"redaction pattern .* is not a valid regular"):
        Redactor(extra_patterns=(bad,))
    with pytest.raises(ConfigError) as info:
        Redactor(extra_patterns=(bad,))
    assert repr(bad) in str(info.value)


def test_invalid_pattern_in_the_environment_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_REDACT_PATTERNS, "ok-\\d+\n(broken")
    with pytest.raises(ConfigError, match=r"'\(broken'"):
        default_redactor()


def test_pattern_matching_empty_text_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'x\*' matches empty text"):
        Redactor(extra_patterns=("x*",))
