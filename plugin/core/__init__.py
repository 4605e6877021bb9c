"""Plugin logic without widgets: layers, settings, styling, background jobs.

Kept apart from ``plugin/ui`` (as QuickOSM keeps ``core`` apart from ``ui``) so the
dialog and the dock stay thin and the logic is testable without clicking.
"""
