"""Everything that talks to the outside: database, Redis, broker, Stripe, FCM, settings."""
