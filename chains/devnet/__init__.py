"""mevsuite: chains/devnet."""
