"""Widgets of the TUI that own their look and behaviour (the node table, the detail panel)."""
