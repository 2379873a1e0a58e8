"""Tolerant parsers shared by the fact readers of every platform: odd text gives None, never an
exception (a node's command output is whatever its OS printed)."""

from __future__ import annotations


def parse_int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None
