"""Modal dialogs of the TUI (one module each), pushed by the screen that needs them."""
