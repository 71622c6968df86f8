#!/usr/bin/env bash
# total PRICE... : prints the sum of its arguments
total() { local sum=0; for p in "$@"; do sum=$((sum + p)); done; echo "$sum"; }
