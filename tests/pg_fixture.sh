#!/usr/bin/env bash
# pg_fixture.sh -- ctest fixture: a fresh private cluster for the tests labelled db.
#   pg_fixture.sh start DIR CONNINFO_FILE   wipe DIR, start a cluster, write its conninfo
#   pg_fixture.sh stop DIR CONNINFO_FILE    stop it and remove DIR
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cmd=$1 dir=$2 file=$3
case $cmd in
start)
  "$here/scripts/pg" stop "$dir" || true
  rm -rf "$dir" "$file"
  conninfo=$("$here/scripts/pg" start "$dir")
  psql "$conninfo" -qAtc "select 1" >/dev/null
  echo "$conninfo" >"$file"
  echo "test cluster: $conninfo"
  ;;
stop)
  "$here/scripts/pg" stop "$dir"
  rm -rf "$dir" "$file"
  ;;
esac
