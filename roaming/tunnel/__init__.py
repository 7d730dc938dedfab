"""tunnel package."""
