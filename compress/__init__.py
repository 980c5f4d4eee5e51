"""edgekit compress package."""
