"""HTTP layer: routers, schemas, auth dependencies. No business rules."""
