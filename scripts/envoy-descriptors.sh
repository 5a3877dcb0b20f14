#!/bin/sh
# Regenerates src/config/schema/envoy.desc from the descriptor set the envoy-types crate ships
# (see scripts/envoy_descriptors.rs). Needs the crate in cargo's registry:
#   cargo fetch is not enough (legate does not depend on it); `cargo install envoy-types` is not
#   a binary either, so: `cargo new /tmp/x && cd /tmp/x && cargo add envoy-types@0.7.7 && cargo fetch`.
set -eu
cd "$(dirname "$0")/.."
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/envoy-types-0.7.7/src/generated/types.bin | head -n 1)
cargo run --release --example envoy_descriptors -- "$src" src/config/schema/envoy.desc
