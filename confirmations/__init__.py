"""Confirmations: a durable, resumable stream of payment results, and signed webhooks."""
