#!/usr/bin/env bash
# Builds the local broker: Tansu from its published crates.io source, with the
# project's patches applied, into ROOT/bin/tansu. A patch's name says which
# crate it changes: tansu-storage-*.patch the storage engines,
# tansu-broker-*.patch the broker (its group coordinator).
#
#   scripts/build-tansu.sh VERSION ROOT [PATCH ...]
#
# No patch builds the release as published (the bench's A/B baseline). The
# broker's source is fetched by cargo at build time and never copied into this
# repository; only the patches are ours (scripts/tansu/). The build folder
# (the extracted sources and cargo's target folder) is shared by every build,
# so a changed patch recompiles only the storage crate and what depends on it.
set -euo pipefail

version=$1
root=$2
shift 2
cargo=${CARGO:-cargo}
cache=${TANSU_BUILD_DIR:-$HOME/.cache/choreo/tansu-build}
src=$cache/src

rm -rf "$src"
mkdir -p "$cache/fetch/src" "$src"

# cargo fetches the published crates; a throwaway package depends on them.
cat >"$cache/fetch/Cargo.toml" <<EOF
[package]
name = "choreo-tansu-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
tansu = { version = "=$version", default-features = false, features = ["libsql"] }
tansu-storage = "=$version"
tansu-broker = "=$version"

[workspace]
EOF
touch "$cache/fetch/src/lib.rs"
"$cargo" fetch --quiet --manifest-path "$cache/fetch/Cargo.toml"

crate_file() {
	find "${CARGO_HOME:-$HOME/.cargo}/registry/cache" -name "$1-$version.crate" -print -quit
}
for crate in tansu tansu-storage tansu-broker; do
	file=$(crate_file "$crate")
	[ -n "$file" ] || { echo "build-tansu: cargo fetched no $crate-$version.crate" >&2; exit 1; }
	tar -xzf "$file" -C "$src"
done

for patch in "$@"; do
	name=$(basename "$patch")
	case $name in
	tansu-broker-*) crate=tansu-broker ;;
	tansu-storage-*) crate=tansu-storage ;;
	*) echo "build-tansu: $name names no crate (tansu-broker-* or tansu-storage-*)" >&2; exit 1 ;;
	esac
	echo "build-tansu: applying $name"
	patch --quiet --forward --strip=1 --directory="$src/$crate-$version" <"$(realpath "$patch")"
done

# The published Cargo.lock pins every other dependency; only the patched crates
# come from their folders (so no --locked: those entries change).
cat >>"$src/tansu-$version/Cargo.toml" <<EOF

[patch.crates-io]
tansu-storage = { path = "../tansu-storage-$version" }
tansu-broker = { path = "../tansu-broker-$version" }
EOF

CARGO_TARGET_DIR="$cache/target" "$cargo" build --release \
	--manifest-path "$src/tansu-$version/Cargo.toml" \
	--no-default-features --features libsql --bin tansu
install -D "$cache/target/release/tansu" "$root/bin/tansu"
echo "build-tansu: installed $root/bin/tansu"
