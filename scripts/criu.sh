#!/usr/bin/env bash
# Puts a CRIU 4.2 binary at ./bin/criu for the container migration tests
# (agent/container). Debian 12's criu 3.17 cannot run on recent kernels.
# Order: ./bin/criu already there and working; a copy of ../shared/tools/criu/criu
# (the project's shared tools beside the clone, read-only); else a build from
# the archive there with its build.sh (installs build dependencies, about 40 s).
# Idempotent. Without ../shared it says so and exits 0: the tests then skip.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=$root/../shared/tools/criu
mkdir -p "$root/bin"
if [ -x "$root/bin/criu" ] && "$root/bin/criu" --version 2>/dev/null | grep -q 'Version: 4'; then
  echo "criu: $root/bin/criu ($("$root/bin/criu" --version | head -1))"
  exit 0
fi
if [ -x "$shared/criu" ] && "$shared/criu" --version >/dev/null 2>&1; then
  cp "$shared/criu" "$root/bin/criu"
elif [ -f "$shared/criu-4.2.tar.gz" ] && [ "$(id -u)" -eq 0 ]; then
  "$shared/build.sh" "$root/bin"
else
  echo "criu: no CRIU 4.2 (no $shared, or it cannot run and building needs root): container migration tests will skip" >&2
  exit 0
fi
echo "criu: $root/bin/criu ($("$root/bin/criu" --version | head -1))"
