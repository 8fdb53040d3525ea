"""The vehicle loans core (vehicular)."""
