"""Development tools, outside the product: the Stripe and FCM stand-ins, the process
launcher behind `ridehail run`, the tests and `bench/`. Not in the wheel; their
dependencies are in the `dev` extra. Nothing in `api`, `workers`, `domain` or `infra`
imports this package."""
