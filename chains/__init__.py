"""mevsuite: chains."""
