"""LoreGuard workers package."""
