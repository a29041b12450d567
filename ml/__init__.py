"""mevsuite: ml."""
