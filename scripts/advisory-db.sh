#!/bin/sh
# Places the RustSec advisory database snapshot (third_party/advisory-db)
# where cargo-deny reads it with --disable-fetch: a git repository in
# DB_DIR whose one commit bears the snapshot's date, which cargo-deny takes
# as the database's age.
#
#   scripts/advisory-db.sh SNAPSHOT DB_DIR DATE
set -eu
snapshot=$1 db=$2 date=$3
rm -rf "$db"
mkdir -p "$db"
cp -R "$snapshot/crates" "$snapshot/LICENSE.txt" "$db/"
cd "$db"
git init --quiet --initial-branch=main
git add --all
GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date \
    git -c user.name=choreo -c user.email=choreo@localhost commit --quiet -m "RustSec advisory database snapshot of $date"
