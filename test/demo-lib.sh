# Shared by the demo scripts (test/fapp-demo.sh, test/groups-demo.sh):
# source it after setting demo (the name in messages), nodes (an array of
# node names, whose logs are printed on failure) and bin_var (the name of
# the variable that may hold a prebuilt qpc binary). It sets tmp, pids and
# ok (set ok=1 at the end of a passing run), installs the cleanup trap and
# the qpc function, and defines the helpers below.

# A node refuses QPC_ variables it does not know; the demo sets its own.
for v in $(compgen -e | grep '^QPC_' || true); do unset "$v"; done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$demo.XXXXXX")
pids=()
ok=0
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ "$ok" != 1 ]; then
		for n in "${nodes[@]}"; do
			[ -f "$tmp/$n.log" ] && { echo "--- $n.log (last 30 lines)"; tail -n 30 "$tmp/$n.log"; }
		done
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

say() { echo "$demo: $*"; }
fail() { echo "$demo: FAIL: $*" >&2; exit 1; }

have_jq=0
command -v jq >/dev/null 2>&1 && have_jq=1
if [ "$have_jq" = 0 ] && ! command -v python3 >/dev/null 2>&1; then
	fail "needs jq or python3 to read the CLI's JSON"
fi

# json_field FIELD: a top-level string field of the JSON on stdin.
json_field() {
	if [ "$have_jq" = 1 ]; then jq -r --arg f "$1" '.[$f] // empty'; else
		python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print(v if v is not None else "")' "$1"
	fi
}
# route_addrs: the destinations of qpc routes --json.
route_addrs() {
	if [ "$have_jq" = 1 ]; then jq -r '.routes[]?.address'; else
		python3 -c 'import json,sys
for r in json.load(sys.stdin).get("routes") or []: print(r["address"])'
	fi
}

free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
	else
		echo $((20000 + RANDOM % 20000))
	fi
}

# until_ok SECONDS WHAT CMD...: run CMD until it succeeds, at most SECONDS.
until_ok() {
	local secs=$1 what=$2
	shift 2
	local end=$((SECONDS + secs))
	last=""
	until "$@"; do
		[ "$SECONDS" -lt "$end" ] || fail "$what: not within ${secs}s${last:+ (last: $last)}"
		sleep 0.2 # polling a process from outside: there is nothing to wait on
	done
}
# never_ok SECONDS WHAT CMD...: run CMD again and again for SECONDS; fail
# as soon as it succeeds.
never_ok() {
	local secs=$1 what=$2
	shift 2
	local end=$((SECONDS + secs))
	last=""
	while [ "$SECONDS" -lt "$end" ]; do
		if "$@"; then fail "$what${last:+ ($last)}"; fi
		sleep 0.2 # polling a process from outside: there is nothing to wait on
	done
}

# The qpc binary: the one named by $bin_var (the Go test passes the one
# it built), else built here.
if [ -n "${!bin_var:-}" ]; then
	cp "${!bin_var}" "$tmp/qpc"
else
	say "building qpc"
	go build -o "$tmp/qpc" ./cmd/qpc
fi
qpc() { "$tmp/qpc" "$@"; }
