#!/bin/bash
# usage: checkperf.sh TARGET AUTH(0|1) OUTFILE
# Launches a 3-member cluster (etcd default timings), optionally turns auth on with an
# unprivileged user (READWRITE on check perf's prefix), runs etcdctl 3.5.1 check perf --load=l,
# and prints throughput, revision delta and the members' CPU per write.
set -euo pipefail
target=$1; auth=$2; out=$3
G=${GAUNTLET:-gauntlet}
CTL=${ETCDCTL:-$HOME/.cache/gauntlet/targets/etcd@3.5.1/etcdctl}
log=$(mktemp)
$G cluster up --target "$target" --members 3 > "$log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -f $log' EXIT
for i in $(seq 1 120); do grep -q "cluster is up" "$log" && break; sleep 0.5; done
grep -q "cluster is up" "$log" || { cat "$log"; exit 1; }
EP=$(sed -n 's/^ENDPOINTS=//p' "$log")
PIDS=$(sed -n 's/.* pid \([0-9]*\) .*/\1/p' "$log")
C="$CTL --endpoints=$EP --command-timeout=30s"
U=""
R=""
if [ "$auth" = 1 ]; then
  $C user add root:rootpw >/dev/null
  $C user grant-role root root >/dev/null
  $C role add bench >/dev/null
  $C role grant-permission bench readwrite --prefix /etcdctl-check-perf/ >/dev/null
  $C user add bench:benchpw >/dev/null
  $C user grant-role bench bench >/dev/null
  $C auth enable >/dev/null
  U="--user=bench:benchpw"
  R="--user=root:rootpw"
fi
cpu() { local t=0; for p in $PIDS; do set -- $(cut -d' ' -f14,15 /proc/$p/stat); t=$((t+$1+$2)); done; echo $t; }
rev() { $C $R endpoint status -w json | python3 -c 'import json,sys; print(max(e["Status"]["header"]["revision"] for e in json.load(sys.stdin)))'; }
r0=$(rev); c0=$(cpu)
$C $U check perf --load=l > "$out.raw" 2>&1 || true
c1=$(cpu); r1=$(rev)
hz=$(getconf CLK_TCK)
tp=$(grep -o '[0-9]* writes/s' "$out.raw" | grep -o '^[0-9]*' || true)
slow=$(grep 'Slowest request' "$out.raw" | grep -o '[0-9.]*s$' || true)
writes=$((r1-r0-1))
python3 - "$target" "$auth" "$tp" "$slow" "$writes" "$c0" "$c1" "$hz" <<'PY' | tee "$out"
import sys
t,a,tp,slow,w,c0,c1,hz=sys.argv[1:]
cpu=(int(c1)-int(c0))/int(hz)
print(f"{t} auth={a} throughput={tp} writes/s slowest={slow} writes={w} server_cpu_s={cpu:.1f} server_cpu_us_per_write={cpu*1e6/max(int(w),1):.1f}")
PY
