"""Widgets: the Pansharpen dialog and dock, built on one shared controls widget."""
