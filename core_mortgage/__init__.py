"""The mortgages core (hipotecario)."""
