"""The template bot: the smallest complete on-chain bot on the runtime (copy it: docs/adding-a-bot.md)."""
