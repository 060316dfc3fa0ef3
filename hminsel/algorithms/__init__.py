"""Algorithm drivers, written once over the backend primitives."""
