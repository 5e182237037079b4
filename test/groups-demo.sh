#!/usr/bin/env bash
# MLS groups with four qpc processes and the CLI (issue 14, acceptance 1):
# relay R and members A, B and C on loopback TCP; A, B and C each know
# only R (transports.peers), so every group frame between them passes R.
#
#   A creates group "Chor" and adds B and C by address: their KeyPackages
#   come over the mesh, nothing is passed out of band. B and C reach A's
#   epoch; a text of A reaches B and C, one of B reaches A and C, each in
#   the inbox with the group's id and its sender. A removes C; C no longer
#   lists the group, and A's next text reaches B but never C.
#
# Needs bash, coreutils, Go, and jq or python3. Exit 0 when every check
# passed; on failure the nodes' logs are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=groups-demo nodes=(R A B C) bin_var=GROUPS_DEMO_BIN
# shellcheck source=test/demo-lib.sh
source test/demo-lib.sh

# group_epoch GROUP: the epoch of GROUP in qpc group list --json, empty
# when the node is not in it.
group_epoch() {
	if [ "$have_jq" = 1 ]; then jq -r --arg g "$1" '[.groups[]? | select(.group == $g)][0].epoch // empty'; else
		python3 -c 'import json,sys
g=[g for g in json.load(sys.stdin).get("groups") or [] if g["group"]==sys.argv[1]]
print(g[0]["epoch"] if g else "")' "$1"
	fi
}
# group_members GROUP: the member addresses of GROUP in qpc group list --json.
group_members() {
	if [ "$have_jq" = 1 ]; then jq -r --arg g "$1" '.groups[]? | select(.group == $g) | .members[]?.address'; else
		python3 -c 'import json,sys
for g in json.load(sys.stdin).get("groups") or []:
    if g["group"]==sys.argv[1]:
        for m in g.get("members") or []: print(m["address"])' "$1"
	fi
}
# copies_to: the destinations of the copies in qpc group send --json.
copies_to() {
	if [ "$have_jq" = 1 ]; then jq -r '.copies[]?.to'; else
		python3 -c 'import json,sys
for c in json.load(sys.stdin).get("copies") or []: print(c["to"])'
	fi
}
# inbox_lines: "GROUP FROM TEXT" for each entry of qpc inbox --json (one
# JSON object a line; GROUP is "-" for a 1:1 message).
inbox_lines() {
	if [ "$have_jq" = 1 ]; then jq -r '"\(.group // "-") \(.from) \(.text)"'; else
		python3 -c 'import json,sys
for l in sys.stdin:
    if l.strip():
        m=json.loads(l); print(m.get("group") or "-", m.get("from",""), m.get("text",""))'
	fi
}

declare -A api
for n in "${nodes[@]}"; do api[$n]="127.0.0.1:$(free_port)"; done
rport=$(free_port)

write_config() {
	local n=$1
	{
		echo "data_dir = '$tmp/$n'"
		echo "[api]"
		echo "addr = '${api[$n]}'"
		echo "[transports]"
		if [ "$n" = R ]; then
			echo "listen = ['tcp://127.0.0.1:$rport']"
			echo "peers = []"
		else
			echo "listen = []"
			echo "peers = ['tcp://127.0.0.1:$rport']"
		fi
		echo "[groups]"
		echo "enabled = true"
	} >"$tmp/$n.toml"
}
for n in "${nodes[@]}"; do write_config "$n"; done

for n in "${nodes[@]}"; do
	qpc node --config "$tmp/$n.toml" >"$tmp/$n.log" 2>&1 &
	pids+=($!)
done
for n in "${nodes[@]}"; do
	until_ok 30 "$n ready" qpc health --ready --api "${api[$n]}" >/dev/null 2>&1
done
say "four nodes ready"

declare -A addr
for n in "${nodes[@]}"; do
	addr[$n]=$(qpc status --api "${api[$n]}" --json | json_field address)
	[ -n "${addr[$n]}" ] || fail "no address for $n"
done
say "addresses: R ${addr[R]}, A ${addr[A]}, B ${addr[B]}, C ${addr[C]}"

# has_route NODE DEST...: NODE has a route to every DEST.
has_route() {
	local n=$1 routes
	shift
	routes=$(qpc routes --api "${api[$n]}" --json 2>/dev/null | route_addrs) || return 1
	for d in "$@"; do grep -qx "${addr[$d]}" <<<"$routes" || return 1; done
}
until_ok 60 "routes of A" has_route A R B C
until_ok 60 "routes of B" has_route B R A C
until_ok 60 "routes of C" has_route C R A B
say "routes converged (every path through R)"

# 1. A creates the group.
gid=$(qpc group create Chor --api "${api[A]}" --json | json_field group)
[[ "$gid" =~ ^[0-9a-f]{32}$ ]] || fail "A's group create printed no group id (got '$gid')"
say "ok: A created group Chor: $gid"

# 2. A adds B and C by address; their KeyPackages come over the mesh.
for n in B C; do
	out=$(qpc group add "$gid" "${addr[$n]}" --api "${api[A]}" --wait 30s) || fail "A adding $n: $out"
	say "ok: A: $out"
done

# 3. B and C join from the Welcome and reach A's epoch.
epoch() { qpc group list --api "${api[$1]}" --json 2>/dev/null | group_epoch "$gid"; }
aepoch=$(epoch A)
[ -n "$aepoch" ] || fail "A does not list its own group $gid"
same_epoch() {
	last=$(epoch "$1") || return 1
	[ "$last" = "$aepoch" ]
}
for n in B C; do
	until_ok 30 "$n to list group $gid at A's epoch $aepoch" same_epoch "$n"
	members=$(qpc group list --api "${api[$n]}" --json | group_members "$gid" | sort | tr '\n' ' ')
	want=$(printf '%s\n' "${addr[A]}" "${addr[B]}" "${addr[C]}" | sort | tr '\n' ' ')
	[ "$members" = "$want" ] || fail "$n lists members $members, want $want"
done
say "ok: B and C are in group $gid at A's epoch $aepoch, with members A, B and C"

# got NODE FROM TEXT: NODE's inbox has TEXT from FROM in the group.
got() {
	local lines
	lines=$(qpc inbox --api "${api[$1]}" --json 2>/dev/null | inbox_lines) || { last="inbox failed"; return 1; }
	grep -qxF "$gid ${addr[$2]} $3" <<<"$lines"
}
# has_text NODE TEXT: NODE's inbox has TEXT at all (any sender, any group).
has_text() {
	local lines
	lines=$(qpc inbox --api "${api[$1]}" --json | inbox_lines) || fail "$1's inbox could not be read"
	if grep -qF " $2" <<<"$lines"; then
		last="$1's inbox: $(grep -F " $2" <<<"$lines" | head -n 1)"
		return 0
	fi
	return 1
}

# 4. A's text reaches B and C, B's reaches A and C.
t1="Probe Donnerstag 19 Uhr"
qpc group send "$gid" "$t1" --api "${api[A]}" | sed 's/^/  /'
for n in B C; do until_ok 30 "$n to receive A's text" got "$n" A "$t1"; done
say "ok: B and C got A's text in group $gid, from A"
t2="Ich bringe die Noten mit"
qpc group send "$gid" "$t2" --api "${api[B]}" | sed 's/^/  /'
for n in A C; do until_ok 30 "$n to receive B's text" got "$n" B "$t2"; done
say "ok: A and C got B's text in group $gid, from B"

# 5. A removes C: C leaves the group, and A's next text is not for C.
out=$(qpc group remove "$gid" "${addr[C]}" --api "${api[A]}") || fail "A removing C: $out"
say "ok: A: $out"
not_in_group() {
	last=$(epoch C) || return 1
	[ -z "$last" ]
}
until_ok 30 "C to no longer list group $gid" not_in_group
say "ok: C removed: it no longer lists group $gid"

t3="Nur noch fuer A und B"
sent=$(qpc group send "$gid" "$t3" --api "${api[A]}" --json)
to=$(copies_to <<<"$sent" | tr '\n' ' ')
[ "$to" = "${addr[B]} " ] || fail "A's send after removing C went to '$to', want B (${addr[B]}) alone"
until_ok 30 "B to receive A's text after C's removal" got B A "$t3"
aepoch=$(epoch A)
until_ok 30 "B to reach A's epoch $aepoch after C's removal" same_epoch B
say "ok: B got A's text sent after C's removal (B and A at epoch $aepoch)"
if has_text C "$t3"; then fail "C got A's text sent after its removal: $last"; fi
never_ok 3 "C got A's text sent after its removal" has_text C "$t3"
say "ok: C cannot read A's text sent after its removal (not in its inbox, 3s after B got it)"

ok=1
say "PASS"
