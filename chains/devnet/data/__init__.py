"""Reference data the devnet is seeded from (shipped with the package; see SOURCES.md)."""
