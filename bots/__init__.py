"""mevsuite: bots."""
