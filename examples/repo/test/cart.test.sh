#!/usr/bin/env bash
set -euo pipefail
source src/cart.sh
[ "$(total 1 2 3)" = 6 ] || { echo "total 1 2 3 should be 6"; exit 1; }
echo "cart ok"
