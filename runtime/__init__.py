"""edgekit runtime package."""
