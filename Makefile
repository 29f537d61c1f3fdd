# Quick start: `make run` (the whole stack) and `make test` (the whole suite).
.PHONY: run test unit lint format bench clean

run:
	@scripts/bootstrap.sh
	.venv/bin/ridehail run

test:
	@scripts/bootstrap.sh --postgres
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports
	scripts/test.sh

# The fast tier alone: use cases against fakes, no service started, no socket opened.
unit:
	@scripts/bootstrap.sh
	.venv/bin/pytest --confcutdir=tests/unit tests/unit

lint:
	@scripts/bootstrap.sh
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy && .venv/bin/lint-imports

format:
	.venv/bin/ruff format . && .venv/bin/ruff check --fix .

clean:
	rm -rf .venv .ridehail .mypy_cache .ruff_cache
