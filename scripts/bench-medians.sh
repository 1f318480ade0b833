#!/usr/bin/env bash
# bench-medians.sh runs each hsmctl bench workload of issue #8 RUNS times
# (default 3) against a running deployment and prints, per workload and
# target, the median of each figure with the exact command.
#
#   scripts/bench-medians.sh DIR CUSTOM_KEY_STORE_ID [extra hsmctl bench flags]
#
# With MOTO_URL set (a moto_server, e.g. http://127.0.0.1:5000), it also
# runs Encrypt against it with --compare. CreateKey and the moto comparison
# run with both of hsmctl bench's clients: the AWS SDK's (sdk) and
# prebuilt bodies signed per request (raw), whose own CPU per request is
# about half the SDK's. HSMCTL names the hsmctl binary
# (default bin/hsmctl); DURATION the measured time per run (default 8s).
# "first ÷" is the first target's throughput over this target's, median
# of the runs: how many times faster hsmsim was than the floor or moto.
# The Encrypt workloads load two floors beside hsmsim: the in-process one
# (--floor) and the same no-op endpoint run as a process of its own
# (--floor-process, "floor-proc"), the floor of any endpoint that, like
# hsmsim's, is a process apart from the load tool. Decrypt and
# GenerateDataKey alternate with Encrypt on the same endpoint
# (--compare-op), so that "first ÷" on Encrypt's row is their ratio to
# Encrypt within the same runs.
set -euo pipefail

dir=${1:?deployment directory}
cks=${2:?custom key store id}
shift 2
hsmctl=${HSMCTL:-bin/hsmctl}
runs=${RUNS:-3}
duration=${DURATION:-8s}

# CreateKey runs warm up for 300 ms only: a cluster holds at most 16,666
# keys, and five runs with each client must fit in one.
workloads=(
	"--op encrypt --concurrency 64 --floor --floor-process --duration $duration"
	"--op encrypt --concurrency 1 --floor --floor-process --duration $duration"
	"--op decrypt --compare-op encrypt --concurrency 64 --duration $duration"
	"--op generate-data-key --compare-op encrypt --concurrency 64 --duration $duration"
	"--op create-key --concurrency 32 --requests 1000 --warmup 300ms"
	"--op create-key --concurrency 32 --requests 1000 --warmup 300ms --client raw"
)
if [[ -n ${MOTO_URL:-} ]]; then
	workloads+=("--op encrypt --concurrency 64 --duration $duration --compare $MOTO_URL"
		"--op encrypt --concurrency 64 --duration $duration --compare $MOTO_URL --client raw")
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for w in "${workloads[@]}"; do
	for i in $(seq "$runs"); do
		# shellcheck disable=SC2086 # the workload is a list of flags
		"$hsmctl" bench --dir "$dir" --custom-key-store-id "$cks" --quiet --output json $w "$@" >"$out/run.$i.json"
	done
	echo "== hsmctl bench --dir $dir --custom-key-store-id $cks $w $* (median of $runs)"
	python3 - "$out" "$runs" <<'EOF'
import json, statistics, sys
out, runs = sys.argv[1], int(sys.argv[2])
reports = [json.load(open(f"{out}/run.{i}.json")) for i in range(1, runs + 1)]
print(f"  {'target':<10} {'ops/s':>9} {'first ÷':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'server µs/op':>13} {'client µs/op':>13}")
for t in range(len(reports[0]["targets"])):
    rows = [r["targets"][t] for r in reports]
    med = lambda f: statistics.median(f(x) for x in rows)
    print(f"  {rows[0]['name']:<10} {med(lambda x: x['ops_per_sec']):>9.0f} {med(lambda x: 1 / x.get('throughput_vs_first', 1)):>9.2f}"
          f" {med(lambda x: x['latency']['p50_ns'])/1e6:>8.3f} {med(lambda x: x['latency']['p99_ns'])/1e6:>8.2f}"
          f" {med(lambda x: x['errors']):>7.0f} {med(lambda x: x.get('server_cpu_per_op_ns', 0))/1e3:>13.0f}"
          f" {med(lambda x: x.get('self_cpu_per_op_ns', 0))/1e3:>13.0f}")
EOF
done
