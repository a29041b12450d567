"""Event topics and log decoders."""
