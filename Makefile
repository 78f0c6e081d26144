# The two commands a fresh machine needs (see README):
#   make demo        set up, then replay the bundled incidents through the full graph (embedded defaults)
#   make test        set up, then run the test suite (all of it: ~8 min on 2 idle cores)
# For contributors:
#   make test-fast   unit tests and in-process security tests: no server, no aiops process (~1 min)
#   make lint        ruff and mypy
#   make docs        the documentation site (mkdocs build --strict), into site/
.PHONY: setup demo test test-fast lint docs evals

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/aiops demo

test: setup
	.venv/bin/python -m pytest

test-fast: setup
	.venv/bin/python -m pytest -m "not integration and not e2e and not faults"

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy core agents graphs service interfaces memory store tools evals --explicit-package-bases

docs: setup
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict

evals: setup
	.venv/bin/aiops eval nezha --out out/nezha.json
	.venv/bin/aiops eval loghub --out out/loghub.json
	.venv/bin/aiops eval runbooks --out out/runbooks.json
