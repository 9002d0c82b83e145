# The two commands of the README, and a few more.
.PHONY: demo setup test bench lint

demo: setup            ## set up, capture this machine (settings sweep), store the runs, open the dashboard
	.venv/bin/driftboard capture --sweep --push --golden --label "$$(hostname) demo"
	.venv/bin/driftboard serve

setup:
	bash scripts/setup.sh

test:                  ## set up and run the whole test suite
	bash scripts/test.sh

bench:                 ## run every benchmark script
	bash scripts/setup.sh --dev
	for b in benchmarks/bench_*.py; do .venv/bin/python $$b || exit 1; done

lint:
	.venv/bin/ruff check .
