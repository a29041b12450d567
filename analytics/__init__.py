"""mevsuite: analytics."""
