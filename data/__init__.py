"""LoreGuard data package."""
