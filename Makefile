# infab — the two commands users run (`make demo`, `make test`) and the
# checks developers run before each commit (`make check`).
SHELL := /bin/bash
VM := tests/softroce/vm.sh
RUNNER := CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER=$(CURDIR)/$(VM)
INFAB := target/release/infab
# Run on the host when its kernel already has the rxe bed (make softroce-up), else in the VM.
HOST_BED := $(shell test -e /sys/class/infiniband/rxe0 && test -e /sys/class/infiniband/rxe1 && echo yes)
IN_BED := $(if $(HOST_BED),,$(VM))
export INFAB_GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null)

PREFIX ?= /usr/local

.PHONY: deps build install demo test unit softroce-test perftest-smoke check bench-vs-perftest bench-alltoall bench-kv softroce-up softroce-down clean

## deps: install the Debian/Ubuntu packages infab builds and tests with (as root; skips what is there)
deps:
	@bash tests/softroce/install-deps.sh

build: deps
	cargo build --release --locked

## install: the binary, its man pages and bash/zsh/fish completions under $(DESTDIR)$(PREFIX)
install: build
	install -Dm755 target/release/infab $(DESTDIR)$(PREFIX)/bin/infab
	target/release/infab man --dir $(DESTDIR)$(PREFIX)/share/man/man1
	mkdir -p $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	target/release/infab completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/infab
	target/release/infab completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_infab
	target/release/infab completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/infab.fish

## demo: build, then run the p2p KV-transfer test (5.1) on SoftRoCE and print its table
demo: build
	$(IN_BED) $(INFAB) run p2p -d rxe1 --target-device rxe0 --sizes 64K,1M,16M --qps 1,4 \
		--trials 5 --duration 1 --verify --json results/demo-5.1.json

## test: unit tests on the host, then the SoftRoCE integration tests on real verbs (in the VM without host rxe)
test: deps unit perftest-smoke softroce-test

unit:
	cargo test --release --locked --lib --bins --test schema --test report_render --test sysinfo --test fuzz_decoders --test compare_cli --test gpu_cli

perftest-smoke:
	$(IN_BED) tests/softroce/perftest-smoke.sh

softroce-test:
	@mkdir -p target/softroce-results
	$(if $(HOST_BED),,$(RUNNER)) INFAB_RESULTS_DIR=$(CURDIR)/target/softroce-results \
		cargo test --release --locked --test softroce_e2e --test softroce_fabric --test softroce_faults --test softroce_kv --test softroce_serving --test softroce_soak --test softroce_validate --test softroce_tiers -- --test-threads=1 --nocapture
	INFAB_RESULTS_DIR=$(CURDIR)/target/softroce-results cargo test --release --locked --test schema

## check: what must pass before every commit
check:
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings
	$(MAKE) test

## bench-vs-perftest: infab (and OLD=path/to/infab) vs ib_write_bw / ib_write_lat, interleaved in one VM boot, medians
bench-vs-perftest: build
	$(IN_BED) tests/softroce/bench-vs-perftest.sh $(INFAB) $(OLD)

## bench-alltoall: AllToAll dispatch/combine of OLD=path/to/infab against this build, interleaved in one VM boot
bench-alltoall: build
	$(IN_BED) tests/softroce/bench-alltoall.sh $(OLD) $(INFAB)

## bench-kv: kv layouts vs each other and vs p2p moving the same bytes, same VM boot
bench-kv: build
	$(IN_BED) tests/softroce/kv-bench.sh $(INFAB)

softroce-up:
	tests/softroce/host-rxe.sh up

softroce-down:
	tests/softroce/host-rxe.sh down

clean:
	cargo clean
