"""The Textual TUI. The only package of fleet_tui that imports textual.

Nothing is imported here, so `import fleet_tui.app.main` (what the CLI loads) stays cheap;
`fleet_tui.app.app.FleetApp` is the application.
"""
