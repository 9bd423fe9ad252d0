#!/usr/bin/env bash
# Prints the lab's offline Pulumi/Helm environment as export lines:
#   eval "$(lab/env.sh)"        (same as: eval "$(python3 -m lab env)")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec python3 -m lab env "$@"
