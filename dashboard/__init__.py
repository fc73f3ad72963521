"""LoreGuard dashboard package."""
