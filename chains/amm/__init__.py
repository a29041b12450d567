"""mevsuite: chains/amm."""
