"""Normalisation helpers shared by the validator and the evaluator (upstream §3.2).

They mirror Go's `strings.TrimSpace`/`strings.ToLower` rather than Python's wider notions, so
an enum value is accepted here exactly when upstream would accept it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

TRUST_LEVELS = ("low", "medium", "high")
SIDE_EFFECTS = frozenset({"read", "write", "destructive"})
RISK_LEVELS = frozenset({"low", "medium", "high"})
DECISIONS = frozenset({"allow", "deny"})
AUTH_MODES = frozenset({"", "none", "header", "oauth", "mtls", "platform"})
POLICY_MODES = frozenset({"", "allow-list", "observe"})

# unicode.IsSpace in Go; Python's str.strip() would also eat U+001C..U+001F.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
_TRUST_RANK = {"low": 1, "medium": 2, "high": 3}


def go_trim(value: str) -> str:
    """`strings.TrimSpace`."""
    return value.strip(_GO_SPACE)


def fold(value: str) -> str:
    """Trimmed, lower-cased enum value (Go's simple lower-casing maps U+0130 to plain `i`)."""
    return go_trim(value).replace("\u0130", "i").lower()


def trust_rank(value: str) -> int:
    """`high`→3, `medium`→2, anything else (empty, garbage) → 1 (`low`)."""
    return _TRUST_RANK.get(fold(value), 1)


def trust_label(rank: int) -> str:
    """Rank → label: ≥3 high, 2 medium, else low."""
    if rank >= 3:
        return "high"
    return "medium" if rank == 2 else "low"


def side_effect(value: str) -> str:
    """Normalised side effect; unknown values become `""`, which never matches a grant."""
    folded = fold(value)
    return folded if folded in SIDE_EFFECTS else ""


def risk_level(explicit: str, effect: str, required_rank: int) -> str:
    """Explicit risk wins; else derived from side effect and required trust (§3.2)."""
    folded = fold(explicit)
    if folded in RISK_LEVELS:
        return folded
    if effect == "destructive" or required_rank >= 3:
        return "high"
    if effect == "write" or required_rank == 2:
        return "medium"
    if effect == "read":
        return "low"
    return ""


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))\Z",
    re.ASCII,  # \d must not accept non-ASCII digits, which Go's parser rejects
)


def parse_rfc3339(value: str) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp, or None when it does not parse."""
    m = _RFC3339.match(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    try:
        offset = timedelta(0)
        if m.group(8) is None:
            oh, om = int(m.group(10)), int(m.group(11))
            if oh > 23 or om > 59:
                return None
            offset = timedelta(hours=oh, minutes=om) * (1 if m.group(9) == "+" else -1)
        stamp = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:
        return None
    return stamp.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)


def format_rfc3339(epoch: float) -> str:
    """UTC, second precision (`2026-03-26T12:00:00Z`); fractions are truncated like Go's Format."""
    return datetime.fromtimestamp(int(epoch // 1), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
