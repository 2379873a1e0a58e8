"""Screens of the TUI: the fleet table and its dialogs."""
