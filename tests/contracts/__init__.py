"""Tests of our Solidity contracts (forge) and their Python side (chains.send.executor)."""
