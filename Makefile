# Everyday commands; CI runs .ci/run (install, lint, types, then the README's test command).
.PHONY: lint format types test-fast test docs

lint:
	ruff check .
	ruff format --check .

format:
	ruff format .
	ruff check --fix .

types:
	mypy

test-fast:  # the inner loop: no slow tests (under a minute)
	python -m pytest -q -m "not slow"

test:  # everything, as CI runs it
	python -m pytest -q

docs:
	mkdocs build --strict
