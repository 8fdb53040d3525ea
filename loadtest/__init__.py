"""The Locust load run of the payment mesh (see docs/load-and-security.md)."""
