"""Turning folders into an index, and the command line."""
