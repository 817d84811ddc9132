"""lime-spark."""
