"""Sending: signer, nonces, gas, the relay client, executor calldata."""
