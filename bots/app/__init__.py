"""The application: CLI, configuration, keys and modes, the demo, devnet and fork runners."""
