#!/bin/sh
# Test app for the migration tests (no Python in the image: a POSIX shell loop).
# - $mem counts in memory only; /tmp/mem.value mirrors it for observation but is never read back,
#   so a restarted process starts again from 1 (only a CRIU restore keeps the count). Both files are replaced
#   whole (written beside, then renamed), so a reader never sees one empty or half-written.
# - $vol continues from /data/count when a volume is mounted at /data: the count survives a restart.
# - at each start it prints "counter started: volume count N" (N read from the volume): the tests compare N with
#   the count the app stopped at; a CRIU restore prints nothing (the process goes on).
# SIGTERM ends it at once, so `docker stop` is quick.
trap 'exit 0' TERM INT
mem=0
vol=$(cat /data/count 2>/dev/null || echo 0)
echo "counter started: volume count $vol"
while true; do
  mem=$((mem + 1))
  echo "$mem" > /tmp/mem.value.tmp && mv /tmp/mem.value.tmp /tmp/mem.value
  if [ -d /data ] && [ -w /data ]; then
    vol=$((vol + 1))
    echo "$vol" > /data/count.tmp && mv /data/count.tmp /data/count
  fi
  sleep "${COUNTER_INTERVAL:-0.1}" &
  wait $!
done
