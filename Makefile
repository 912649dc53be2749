# Two commands for a newcomer on a fresh Debian machine:
#   make demo   installs what is needed, builds, and runs the main job
#   make test   installs what is needed, builds, and runs the test suite (CI runs this)

APT_PACKAGES = pkg-config libopenblas-dev libdnnl-dev ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo libpng-dev libturbojpeg0-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# The tests run optimised: numeric loops in Swift debug builds are slow.
SWIFT_TEST_FLAGS = -c release -Xswiftc -enable-testing --disable-swift-testing

.PHONY: deps build test demo bench-ops bench-models fuzz clean

deps:
	@if dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then echo "system packages present"; else \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(APT_PACKAGES); fi

build: deps
	swift build -c release

test: deps
	swift test $(SWIFT_TEST_FLAGS)

# The main job: explain the bundled demo model's sample images with every method, write the HTML
# report (xai-demo/index.html) and print each method's pointing-game score.
demo: build
	.build/release/xai demo

# Coverage-guided fuzzing of the ONNX importer, the .npy reader, picture decoding + preprocessing and
# the method configuration (libFuzzer + AddressSanitizer; not part of make test, which replays the
# committed corpus in Fuzz/Corpus/). FUZZ_SECONDS per target (120), FUZZ_TARGETS (all).
fuzz: deps
	Tools/fuzz.sh

bench-ops: build
	.build/release/xai-bench ops --device cpu

bench-models: build
	.build/release/xai-bench models --device cpu

clean:
	rm -rf .build .build-fuzz
