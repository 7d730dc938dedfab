"""tap package."""
