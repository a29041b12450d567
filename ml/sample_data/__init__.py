"""Real market data shipped with mevsuite (see SOURCES.md); use `ml.data.sample_path(name)` / `list_samples()`."""
