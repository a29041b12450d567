"""mevsuite: chains/lending."""
