"""edgekit targets package."""
