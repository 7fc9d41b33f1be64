# dagi: `make run` and `make test` do all set-up on a fresh Debian 12 machine.
.PHONY: all deps run test bench docs fuzz clean release

BUILD ?= build
MESON_TEST_OPTS = -Dtest_hooks=true

all: release

deps:
	@scripts/install-deps.sh build

$(BUILD)/release/build.ninja: | deps
	meson setup $(BUILD)/release --buildtype=release -Dtest_hooks=false

release: deps $(BUILD)/release/build.ninja
	ninja -C $(BUILD)/release

# Starts `dagi node` on the embedded defaults with the sample configuration.
run: release
	$(BUILD)/release/dagi node --config config/dagi.yml

# Builds the test, sanitizer and clang builds and runs every test.
test: deps
	scripts/test.sh

bench: deps
	@scripts/install-deps.sh bench
	bench/run.sh

# Regenerates docs/CONFIGURATION.md from the schema (a test checks they agree).
docs: release
	$(BUILD)/release/dagi config docs > docs/CONFIGURATION.md

# libFuzzer drivers under clang: build/fuzz/fuzz_<name> tests/fuzz/corpus/<name>
fuzz: deps
	@scripts/install-deps.sh fuzz
	CC=clang meson setup $(BUILD)/fuzz $(MESON_TEST_OPTS) -Dfuzzers=true \
	    -Db_sanitize=address,undefined -Db_lundef=false || true
	ninja -C $(BUILD)/fuzz

clean:
	rm -rf $(BUILD)
