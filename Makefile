# Two commands for a newcomer on a fresh Debian machine:
#   make demo   installs what is needed, builds, and runs the main job
#   make test   installs what is needed, builds, and runs the test suites: Swift, the C interface,
#               Python, and the wheel in a fresh venv (CI runs this)

# clang-15 (PoCL's own compiler) also compiles the GPU kernels for NVIDIA in PTXCompileTests.
APT_PACKAGES = pkg-config libopenblas-dev libdnnl-dev ocl-icd-opencl-dev opencl-headers libclblast-dev pocl-opencl-icd clinfo libpng-dev libturbojpeg0-dev libsuitesparse-dev \
               clang-15 \
               gcc python3 python3-numpy python3-pytest python3-venv python3-pip python3-yaml
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The tests run optimised: numeric loops in Swift debug builds are slow.
SWIFT_TEST_FLAGS = -c release -Xswiftc -enable-testing --disable-swift-testing
# The C library and the CLI the C and Python suites use, linked from the test build's objects.
SWIFT_BUILD_FLAGS = -c release -Xswiftc -enable-testing
PYTHON = python3

.PHONY: deps build test test-swift test-c test-python wheel demo bench-ops bench-models fuzz mutate clean

deps:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then echo "system packages present"; else \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(APT_PACKAGES); fi

build: deps
	swift build -c release

test: deps
	$(PYTHON) Tools/mutate_generated.py --check-map
	swift build $(SWIFT_BUILD_FLAGS) --build-tests
	swift test $(SWIFT_TEST_FLAGS) --skip-build
	swift build $(SWIFT_BUILD_FLAGS)
	Tests/C/run.sh .build/release
	XAI_LIBRARY=$(CURDIR)/.build/release/libxaic.so XAI_CLI=$(CURDIR)/.build/release/xai $(PYTHON) -m pytest -q -p no:cacheprovider python/tests
	python/tests/check_wheel.sh

# The suites one at a time (each after `make build` or `make test` has built the library).
test-swift: deps
	swift test $(SWIFT_TEST_FLAGS)

test-c:
	swift build $(SWIFT_BUILD_FLAGS) --product xaic
	Tests/C/run.sh .build/release

test-python:
	swift build $(SWIFT_BUILD_FLAGS) --product xaic
	swift build $(SWIFT_BUILD_FLAGS) --product xai
	XAI_LIBRARY=$(CURDIR)/.build/release/libxaic.so XAI_CLI=$(CURDIR)/.build/release/xai $(PYTHON) -m pytest -q -p no:cacheprovider python/tests

# The Python wheel (dist/), with the Swift runtime linked statically: pip install dist/xai_attribution_engine-*.whl
# (the distribution xai-attribution-engine; `import xai`).
wheel: deps
	$(PYTHON) -m pip wheel ./python --no-build-isolation --no-deps -w dist

# The main job: explain the bundled demo model's sample images with every method, write the HTML
# report (xai-demo/index.html) and print each method's pointing-game score.
demo: build
	.build/release/xai demo

# Coverage-guided fuzzing of the ONNX importer, the .npy reader, picture decoding + preprocessing and
# the method configuration (libFuzzer + AddressSanitizer; not part of make test, which replays the
# committed corpus in Fuzz/Corpus/). FUZZ_SECONDS per target (120), FUZZ_TARGETS (all).
fuzz: deps
	Tools/fuzz.sh

# Generated mutants (not part of make test: a rebuild per mutant, about a minute each on 2 cores).
# MUTANTS sampled with SEED from every mutable file, or only from those changed since CHANGED (a git
# revision). Survivors are triaged in Tools/mutation-triage.json; the tests each file needs are in
# Tools/mutation-map.json. Hand-written mutants: python3 Tools/mutate.py.
MUTANTS = 200
SEED = 1
mutate: deps
	$(PYTHON) Tools/mutate_generated.py --sample $(MUTANTS) --seed $(SEED) $(if $(CHANGED),--changed $(CHANGED))

bench-ops: build
	.build/release/xai-bench ops --device cpu

bench-models: build
	.build/release/xai-bench models --device cpu

clean:
	rm -rf .build .build-fuzz .build-wheel dist
