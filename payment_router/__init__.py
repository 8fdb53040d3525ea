"""The channel-facing payment router: the only door the channels see."""
