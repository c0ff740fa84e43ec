"""akidb-observability: the Pulumi program and its building blocks."""
