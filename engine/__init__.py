"""mgrun engine."""
