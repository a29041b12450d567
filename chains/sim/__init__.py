"""Simulation: the pyrevm fork simulator, the token screen."""
