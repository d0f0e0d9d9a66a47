"""The Stripe side of the integration port, on the official SDK."""
