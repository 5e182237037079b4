#!/usr/bin/env bash
# The original QuicProChat demo: A on LoRa (a simulated channel) -> B, a
# relay on LoRa and TCP -> C on TCP, and C's reply back to A. The three
# nodes run in one process, because a simulated LoRa channel is shared in
# memory (lora+mock://); with real radios, run `qpc node` on each machine
# with --listen lora+serial:///dev/ttyUSB0?freq=869525000&sf=7.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go test -count=1 -run '^TestLoRaDemo$' -v ./actors/node
