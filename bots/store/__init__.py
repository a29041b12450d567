"""mevsuite: bots/store."""
