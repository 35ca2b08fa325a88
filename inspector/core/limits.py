"""Limits of the peer that the command line checks before anything heavy is imported."""

MIN_INTERVAL = 0.1
"""Shortest collection interval accepted (seconds); the SDK's default is 300."""
