"""Secret redaction: every kind of secret we promise to remove, and ordinary log text left alone."""

from __future__ import annotations

import pytest

from tools.analysis.redact import redact, redaction_kinds

SECRETS = [
    ("Authorization: Bearer abcdef123456789.xyz", "abcdef123456789", "[REDACTED:token]"),
    ("login user=bob password=hunter2 ok", "hunter2", "password=[REDACTED:secret]"),
    ("db url postgres://admin:s3cr3t@db:5432/app", "s3cr3t", "admin:[REDACTED:password]@db"),
    ("GET /cb?access_token=tok123&y=2", "tok123", "access_token=[REDACTED:secret]&y=2"),
    ('{"api_key": "abc123def", "n": 1}', "abc123def", '"api_key": "[REDACTED:secret]"'),
    ("used key AKIAIOSFODNN7EXAMPLE now", "AKIAIOSFODNN7EXAMPLE", "[REDACTED:aws-key-id]"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI", "[REDACTED:"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcDEF_123 end", "eyJhbGciOiJIUzI1NiJ9", "[REDACTED:jwt] end"),
    ("key sk-proj-abcdefghijklmnopqrstuvwx used", "abcdefghijklmnop", "[REDACTED:api-key]"),
    ("gh token ghp_" + "a1B2" * 9 + " pushed", "a1B2a1B2", "[REDACTED:api-key]"),
    ("mysql --password=hunter2 -u root", "hunter2", "--password=[REDACTED:secret]"),
    ("X-Api-Key: 12345abcdef", "12345abcdef", "[REDACTED:secret]"),
]


@pytest.mark.parametrize(("text", "secret", "expected"), SECRETS)
def test_secret_is_removed(text: str, secret: str, expected: str) -> None:
    out = redact(text)
    assert secret not in out
    assert expected in out


def test_private_key_block_is_removed_whole() -> None:
    text = "loaded -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nxyz\n-----END RSA PRIVATE KEY----- done"
    out = redact(text)
    assert out == "loaded [REDACTED:private-key] done"
    assert redaction_kinds(text) == ["private-key"]


@pytest.mark.parametrize(
    "text",
    [
        "Failed password for root from 1.2.3.4 port 22 ssh2",
        "session opened for user root by (uid=0)",
        "token refreshing now",
        "GET /api/v1/items?page=2 200 12ms",
        "blk_-6952295868487656571 terminating",
    ],
)
def test_ordinary_lines_are_unchanged(text: str) -> None:
    assert redact(text) == text


def test_redaction_is_idempotent() -> None:
    once = redact("password=hunter2 Authorization: Bearer abcdefgh12345678")
    assert redact(once) == once
