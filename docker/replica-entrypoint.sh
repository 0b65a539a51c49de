#!/bin/bash
# Replica: on first start, clone the primary with pg_basebackup -R (which writes
# standby.signal and primary_conninfo), then run as a hot standby. Runs as the postgres user.
set -euo pipefail

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -h "$PRIMARY_HOST" -p 5432 -q; do
        echo "replica: waiting for $PRIMARY_HOST"
        sleep 1
    done
    # PGPASSWORD (the replicator's) comes from the environment.
    pg_basebackup -h "$PRIMARY_HOST" -p 5432 -U replicator -D "$PGDATA" -R -X stream --checkpoint=fast
    chmod 0700 "$PGDATA"
fi

exec postgres
