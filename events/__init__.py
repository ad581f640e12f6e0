"""The event log: the store, typed events, crypto-shredding, wake-ups and subscribers."""
