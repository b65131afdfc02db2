"""Value types, settings, errors and tables shared by every Sluice package.

This package imports nothing else of ours, so every other package may import it.
"""
