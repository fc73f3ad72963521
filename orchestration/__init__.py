"""LoreGuard orchestration package."""
