# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
VENV := .venv/bin
PACKAGES := cim importers tiles api cli

.PHONY: bootstrap demo test lint pytest bench format

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	$(VENV)/cim demo

lint: bootstrap
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/lint-imports

pytest: bootstrap
	$(VENV)/python -m pytest -n 2 --dist loadfile

test: lint pytest

format: bootstrap
	$(VENV)/ruff format .
	$(VENV)/ruff check --fix .

bench: bootstrap
	$(VENV)/python bench/run
