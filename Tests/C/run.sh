#!/usr/bin/env bash
# Builds the C interface's test program against include/xai.h and libxaic.so (strict C99) and runs
# it. Usage: Tests/C/run.sh BUILD_DIR (the folder holding libxaic.so, e.g. .build/release).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
lib="$(cd "${1:-$root/.build/release}" && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# The header alone, as a C client includes it.
printf '#include "xai.h"\nint main(void) { return xai_api_version() == XAI_API_VERSION ? 0 : 1; }\n' > "$out/header.c"
cc -std=c99 -Wall -Wextra -Werror -pedantic -I"$root/include" -c "$out/header.c" -o "$out/header.o"
cc -std=c99 -Wall -Wextra -Werror -pedantic -I"$root/include" "$root/Tests/C/xai_c_test.c" -o "$out/xai_c_test" \
   -L"$lib" -lxaic -Wl,-rpath,"$lib" -lpthread -lm
cd "$out" && ./xai_c_test "$root/Tests/Fixtures"
