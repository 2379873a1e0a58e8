"""Plain-text formatting shared by the CLI, the TUI and exports: one definition of each label.

Every function takes the value (or a node's facts dict) and returns text; an unknown value is
`missing` ("—" in the TUI, "-" on the plain-ASCII CLI). Any layer may import this module
(stdlib only, no I/O).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any, Final

MISSING: Final = "—"
"""What an unknown value shows as: never "None", never an empty cell that looks like a bug."""

OS_NAMES: Final = {"macos": "macOS", "linux": "Linux"}

MAX_FIELD: Final = 200
"""Characters of one node-supplied field printed on a terminal line before it is cut."""
LINE_LIMIT: Final = 4000
"""Characters of one whole CLI line that may carry node text (progress, results) before it is cut."""
MAX_DOCUMENT_FIELD: Final = 4000
"""The same bound for exported documents (Markdown, HTML), whose notes run longer."""
_UNPRINTABLE: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
"""Unicode categories never printed as they are: control, format (bidi overrides, zero-width),
surrogate, private-use and unassigned characters."""


def clean(text: object, limit: int = MAX_FIELD) -> str:
    """Printable text from a node-supplied value: control and format characters shown as \\xNN /
    \\uNNNN escapes (a tab is kept), the length bounded by `limit` (then "...").

    The one sanitiser for strings a node (or the inventory) supplied, used wherever they are
    printed: the terminal table, the CLI, and the Markdown and HTML exports.
    """
    value = str(text)
    out = []
    for ch in value[:limit]:
        if ch == "\t" or unicodedata.category(ch) not in _UNPRINTABLE:
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
    if len(value) > limit:
        out.append("...")
    return "".join(out)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def show(value: object, missing: str = MISSING) -> str:
    """A value as text, with `missing` for None or empty."""
    if value is None or value == "":
        return missing
    return str(value)


def clip(text: str, width: int) -> str:
    """Shorten to `width` cells with an ellipsis, so one long CPU model cannot push columns off."""
    return text if len(text) <= width else text[: width - 1] + "…"


def format_memory(n_bytes: object, missing: str = MISSING) -> str:
    """Bytes as GiB: "16 GiB", "7.7 GiB", "0 GiB" (whole numbers only when within 0.05)."""
    if not _is_number(n_bytes) or n_bytes < 0:  # type: ignore[operator]
        return missing
    gib = float(n_bytes) / 2**30  # type: ignore[arg-type]
    return f"{gib:.0f} GiB" if abs(gib - round(gib)) < 0.05 else f"{gib:.1f} GiB"


def format_cores(facts: Mapping[str, Any], missing: str = MISSING) -> str:
    """Performance/efficiency cores ("8P/4E") on Apple Silicon, else the total count."""
    p, e = facts.get("cores_p"), facts.get("cores_e")
    if isinstance(p, int) and isinstance(e, int):
        return f"{p}P/{e}E"
    return show(facts.get("cores_total"), missing)


def format_os(facts: Mapping[str, Any], missing: str = MISSING) -> str:
    """Short: "macOS 14.5", or "Linux 6.1.0" (the kernel; a distribution name does not fit)."""
    os_name = facts.get("os")
    if not os_name:
        return missing
    pretty = OS_NAMES.get(str(os_name), str(os_name))
    if os_name == "macos":
        version = facts.get("os_version")
    else:
        kernel = facts.get("kernel")
        version = str(kernel).split("-")[0] if kernel else facts.get("os_version")
    return f"{pretty} {version}" if version else pretty


def format_power(facts: Mapping[str, Any], missing: str = MISSING) -> str:
    """ "ac", "battery", plus "low-power" when Low Power Mode is on."""
    source = facts.get("power_source")
    text = show(source, missing)
    if facts.get("low_power_mode"):
        text = "low-power" if source is None else f"{text} low-power"
    return text


def format_load(facts: Mapping[str, Any], missing: str = MISSING) -> str:
    """The 1-minute load average ("1.25")."""
    load = facts.get("load_avg")
    if isinstance(load, list | tuple) and load and _is_number(load[0]):
        return f"{load[0]:.2f}"
    return missing


def format_rtt_ms(ms: float | None, missing: str = MISSING) -> str:
    """A round trip in milliseconds: "1.2 ms" below 10 ms, else "12 ms"."""
    if ms is None:
        return missing
    return f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


def format_ns_as_ms(ns: object, missing: str = "n/a") -> str:
    """A latency in nanoseconds as milliseconds with three decimals ("1.234 ms")."""
    return f"{float(ns) / 1e6:.3f} ms" if _is_number(ns) else missing  # type: ignore[arg-type]
