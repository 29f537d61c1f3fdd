"""The use cases: what the API and the workers ask of the system, in one place.

Each use case takes a unit of work (`ports.UnitOfWork`: the repositories and queues of one
transaction), a small `Context` (the time and the rules in force) and what the caller
asked; it loads aggregates, lets them enforce their rules, and records what follows
through `follow_ups.record`. It never commits (the unit of work's owner does) and does no
I/O of its own: `infra/` implements the ports, tests use in-memory fakes.
"""
