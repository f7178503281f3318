"""mgrun runner."""
