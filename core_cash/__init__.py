"""The cash loans core (crédito efectivo)."""
