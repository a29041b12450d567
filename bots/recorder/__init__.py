"""The recording bot."""
