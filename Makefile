# The two commands a fresh machine needs (see README):
#   make demo   set up, then replay the bundled incidents through the full graph (embedded defaults)
#   make test   set up, then run the test suite
.PHONY: setup demo test lint evals

setup:
	@bash scripts/setup.sh

demo: setup
	.venv/bin/aiops demo

test: setup
	.venv/bin/python -m pytest

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy core agents graphs interfaces memory tools evals --explicit-package-bases

evals: setup
	.venv/bin/aiops eval nezha --out out/nezha.json
	.venv/bin/aiops eval loghub --out out/loghub.json
	.venv/bin/aiops eval runbooks --out out/runbooks.json
