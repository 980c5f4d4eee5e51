"""edgekit export package."""
