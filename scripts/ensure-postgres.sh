#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for the user
# `postgres` without a password, which is what `make run` and the tests use.
# Machines of this project's kind run one already; elsewhere this starts the
# installed cluster, or installs Debian's server and trusts local TCP logins.
set -euo pipefail

ready() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }

ready && exit 0

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "No PostgreSQL answers on 127.0.0.1:5432 and installing one needs root;" >&2
    echo "start a server there that lets the user postgres in without a password." >&2
    exit 1
  fi
  echo "PostgreSQL is not installed; installing Debian's server"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # A development server for this machine only: trust loopback logins.
  sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  # The package may have started the cluster already; reload it with the
  # new rule either way.
  pg_ctlcluster --skip-systemctl-redirect "$version" main restart || true
fi

version=$(ls /etc/postgresql | sort -V | tail -n 1)
echo "starting PostgreSQL $version"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 60); do
  ready && exit 0
  sleep 0.5
done
echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
