#!/bin/bash
# Soak run of the crash-safety test (tests/integration/test_crash.sh) with many more kill points
# than CI's 50 a command: CIMG_CRASH_KILLS (default here 500) and, to replay a failure, the
# CIMG_CRASH_SEED it printed. Needs root and a built cimg, as the integration tests:
#
#   CIMG=/path/to/cimg bash tests/soak/crash.sh [KILLS]
#
# Every extra argument after KILLS is ignored; the run takes roughly KILLS/50 times the CI run.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
kills=${1:-${CIMG_CRASH_KILLS:-500}}
case "$kills" in
  '' | *[!0-9]*)
    echo "usage: $0 [KILLS]" >&2
    exit 2
    ;;
esac
CIMG_CRASH_KILLS=$kills CIMG_SRC=$src exec bash "$src/tests/integration/test_crash.sh"
