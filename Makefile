# The project's commands. Each one installs what it needs first (scripts/setup.sh).
.PHONY: demo test bench bench-quick package

demo:            ## start a local PostgreSQL 15 with pg_assistant and show the rules at work
	bash scripts/demo.sh

test:            ## the whole test suite on every supported major (pgrx.toml)
	bash scripts/test.sh

bench:           ## full benchmark run; results in bench/results/
	bash bench/run.sh --scale full

bench-quick:     ## a few minutes; proves the harness works
	bash bench/run.sh --scale quick

package:         ## a .deb (Debian layout) and a tarball per supported major, in target/package/
	bash scripts/package.sh
