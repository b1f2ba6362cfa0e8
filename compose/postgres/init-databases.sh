#!/bin/sh
# Each service owns its database, as its own role that can reach no other:
# a service taken over reads no other service's data. PostgreSQL's image
# runs this once, when its volume is first initialised. On one host the
# roles share POSTGRES_PASSWORD; the chart gives each its own.
set -eu
for name in order inventory payment shipping provider; do
    psql -v ON_ERROR_STOP=1 -v role="choreo_$name" -v password="$POSTGRES_PASSWORD" \
        --username "$POSTGRES_USER" --dbname postgres <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE CONNECT, TEMPORARY ON DATABASE :"role" FROM PUBLIC;
SQL
done
