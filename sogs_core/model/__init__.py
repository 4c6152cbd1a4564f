"""What every stage shares: `Splats` (the scene in memory, attribute table included), the error
types, the device choice, and synthetic scenes for demos and tests."""
