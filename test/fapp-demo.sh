#!/usr/bin/env bash
# FAPP with five qpc processes and the CLI (issue 13, acceptance 1 and 2):
# therapists T1 and T2, relay R, patients P1 and P2 on loopback TCP; P1,
# P2, T1 and T2 each know only R (transports.peers), so every FAPP frame
# between a patient and a therapist passes R.
#
#   T1 publishes a TOML slots file, T2 an iCalendar one, some slots of
#   each not matching; P1 searches "verhaltenstherapie, gkv, PLZ 803,
#   video or praxis, the next 14 days" and must get exactly the matching
#   ones; P1 reserves one, T1 sees the request and confirms it, P1 sees
#   "confirmed"; P2 reserving the same slot is told "taken", and a search
#   no longer returns it.
#
# Needs bash, coreutils (GNU date), Go, and jq or python3. Exit 0 when
# every check passed; on failure the nodes' logs are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

demo=fapp-demo nodes=(R T1 T2 P1 P2) bin_var=FAPP_DEMO_BIN
# shellcheck source=test/demo-lib.sh
source test/demo-lib.sh

# slot_lines: "THERAPIST START SLOT" for each slot of a search.
slot_lines() {
	if [ "$have_jq" = 1 ]; then jq -r '.slots[] | "\(.therapist) \(.start) \(.slot)"'; else
		python3 -c 'import json,sys
for s in json.load(sys.stdin)["slots"]: print(s["therapist"], s["start"], s["slot"])'
	fi
}
# request_for SLOT: the reservation id of the request for SLOT.
request_for() {
	if [ "$have_jq" = 1 ]; then jq -r --arg s "$1" '[.requests[] | select(.slot == $s)][0].reservation // empty'; else
		python3 -c 'import json,sys
r=[q for q in json.load(sys.stdin)["requests"] if q["slot"]==sys.argv[1]]
print(r[0]["reservation"] if r else "")' "$1"
	fi
}

declare -A api
for n in R T1 T2 P1 P2; do api[$n]="127.0.0.1:$(free_port)"; done
rport=$(free_port)

# write_config NODE [FAPP SECTION LINES...]
write_config() {
	local n=$1
	shift
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
		echo "[fapp]"
		for l in "$@"; do echo "$l"; done
	} >"$tmp/$n.toml"
}
write_config R "role = ['relay']"
write_config T1 "role = ['therapist']" "name = 'Praxis Eins'" "plz = '80331'" "approbation = 'LANR-0001'" \
	"fachrichtung = ['verhaltenstherapie', 'tiefenpsychologisch']" "kostentraeger = ['gkv', 'selbstzahler']"
write_config T2 "role = ['therapist']" "name = 'Praxis Zwei'" "plz = '80335'" "approbation = 'LANR-0002'" \
	"fachrichtung = ['verhaltenstherapie']" "kostentraeger = ['gkv', 'selbstzahler']"
write_config P1 # the role from the command line
write_config P2

start_node() {
	local n=$1
	shift
	qpc node --config "$tmp/$n.toml" "$@" >"$tmp/$n.log" 2>&1 &
	pids+=($!)
}
start_node R
for n in T1 T2; do start_node $n; done
for n in P1 P2; do start_node $n --fapp patient; done
for n in R T1 T2 P1 P2; do
	until_ok 30 "$n ready" qpc health --ready --api "${api[$n]}" >/dev/null 2>&1
done
say "five nodes ready"

declare -A addr
for n in R T1 T2 P1 P2; do
	addr[$n]=$(qpc status --api "${api[$n]}" --json | json_field address)
	[ -n "${addr[$n]}" ] || fail "no address for $n"
done

# has_route NODE DEST...: NODE has a route to every DEST.
has_route() {
	local n=$1 routes
	shift
	routes=$(qpc routes --api "${api[$n]}" --json 2>/dev/null | route_addrs) || return 1
	for d in "$@"; do grep -qx "${addr[$d]}" <<<"$routes" || return 1; done
}
for n in P1 P2; do until_ok 60 "routes of $n" has_route $n R T1 T2; done
for n in T1 T2; do until_ok 60 "routes of $n" has_route $n R P1 P2; done
say "routes converged (every path through R)"

# Slot times relative to today, in UTC as the API prints them.
at() { date -u -d "$(date -u -d "+$1 days" +%F) $2" +%Y-%m-%dT%H:%M:%SZ; }
ics() { date -u -d "$(date -u -d "+$1 days" +%F) $2" +%Y%m%dT%H%M%SZ; }

cat >"$tmp/t1-slots.toml" <<EOF
[[slot]]                      # matches
start = $(at 2 10:00:00)
minutes = 50
type = "therapieplatz"
modalitaet = ["praxis"]
fachrichtung = "verhaltenstherapie"
kostentraeger = ["gkv"]

[[slot]]                      # matches (video)
start = $(at 3 11:00:00)
minutes = 50
type = "therapieplatz"
modalitaet = ["video", "telefon"]
kostentraeger = ["gkv"]

[[slot]]                      # no: private insurance only
start = $(at 4 09:00:00)
minutes = 50
type = "therapieplatz"
modalitaet = ["praxis"]
kostentraeger = ["pkv"]

[[slot]]                      # no: tiefenpsychologisch
start = $(at 5 09:00:00)
minutes = 50
type = "therapieplatz"
modalitaet = ["praxis"]
fachrichtung = "tiefenpsychologisch"

[[slot]]                      # no: telephone only
start = $(at 6 09:00:00)
minutes = 50
type = "sprechstunde"
modalitaet = ["telefon"]

[[slot]]                      # no: after the next 14 days
start = $(at 20 09:00:00)
minutes = 50
type = "therapieplatz"
modalitaet = ["praxis"]
EOF
# T2's calendar: the first event takes the config's fachrichtung and
# kostentraeger (verhaltenstherapie; gkv, selbstzahler), a folded line.
printf '%s\r\n' "BEGIN:VCALENDAR" "VERSION:2.0" "PRODID:-//qpc//fapp-demo//EN" \
	"BEGIN:VEVENT" "UID:t2-1@demo" "DTSTART:$(ics 2 14:00:00)" "DURATION:PT25M" "SUMMARY:Sprechstunde per" " Video" \
	"X-FAPP-TYPE:sprechstunde" "X-FAPP-MODALITAET:video" "END:VEVENT" \
	"BEGIN:VEVENT" "UID:t2-2@demo" "DTSTART:$(ics 7 08:00:00)" "DTEND:$(ics 7 08:50:00)" \
	"X-FAPP-TYPE:therapieplatz" "X-FAPP-MODALITAET:praxis" "X-FAPP-KOSTENTRAEGER:selbstzahler" "END:VEVENT" \
	"END:VCALENDAR" >"$tmp/t2-slots.ics"

qpc fapp publish --api "${api[T1]}" --file "$tmp/t1-slots.toml"
qpc fapp publish --api "${api[T2]}" --file "$tmp/t2-slots.ics"

expected=$(printf '%s\n' "${addr[T1]} $(at 2 10:00:00)" "${addr[T1]} $(at 3 11:00:00)" "${addr[T2]} $(at 2 14:00:00)" | sort)
search() {
	qpc fapp search --api "${api[$1]}" --fachrichtung verhaltenstherapie --kostentraeger gkv --plz 803 \
		--modalitaet video,praxis --from "$(date +%F)" --to "$(date -d '+14 days' +%F)" --wait 2s --json
}
# found NODE: the "THERAPIST START" pairs of NODE's search.
found() { search "$1" | slot_lines | cut -d' ' -f1,2 | sort; }
# The announces reach R in their own time; search until they have.
matches() {
	last=$(found "$1" | tr '\n' ';')
	[ "$last" = "$(tr '\n' ';' <<<"$expected")" ]
}
until_ok 60 "P1's search to return exactly the 3 matching slots" matches P1
say "P1 found exactly the 3 matching slots:"
search P1 | slot_lines | sed 's/^/  /'

slot=$(search P1 | slot_lines | grep "^${addr[T1]} $(at 2 10:00:00) " | cut -d' ' -f3)
[ -n "$slot" ] || fail "T1's first slot is not in P1's search"
# P2 searches too (a node reserves only what its own search returned).
until_ok 30 "P2's search" matches P2

res=$(qpc fapp reserve "$slot" --api "${api[P1]}" --note "Bitte um Rückruf" --json | json_field reservation)
[ -n "$res" ] || fail "P1's reserve printed no reservation id"
say "P1 reserved $slot: reservation $res, pending"

request() { qpc fapp requests --api "${api[T1]}" --json | request_for "$slot"; }
has_request() { [ -n "$(request)" ]; }
until_ok 30 "T1 to receive the reservation" has_request
tres=$(request)
qpc fapp requests --api "${api[T1]}"
qpc fapp confirm "$tres" --api "${api[T1]}" --text "Praxis Eins, 2. Stock"

st=$(qpc fapp status "$res" --api "${api[P1]}" --wait 10s --json | json_field status)
[ "$st" = confirmed ] || fail "P1's reservation is $st after T1 confirmed it, want confirmed"
say "P1 sees: confirmed"

res2=$(qpc fapp reserve "$slot" --api "${api[P2]}" --json | json_field reservation)
[ -n "$res2" ] || fail "P2's reserve printed no reservation id"
st=$(qpc fapp status "$res2" --api "${api[P2]}" --wait 10s --json | json_field status)
[ "$st" = taken ] || fail "P2's reservation of the confirmed slot is $st, want taken"
say "P2 reserving the same slot: taken"

# gone NODE: NODE's search succeeds and returns exactly the two other
# matching slots (T1's video slot, T2's Sprechstunde), not the confirmed
# one; a search that fails or returns anything else is not "gone".
expected2=$(printf '%s\n' "${addr[T1]} $(at 3 11:00:00)" "${addr[T2]} $(at 2 14:00:00)" | sort)
gone() {
	local out lines
	out=$(search "$1") || { last="search failed (exit $?)"; return 1; }
	lines=$(slot_lines <<<"$out") || { last="unreadable search output: $out"; return 1; }
	if grep -q " $slot\$" <<<"$lines"; then
		last="still returns $slot"
		return 1
	fi
	last=$(cut -d' ' -f1,2 <<<"$lines" | sort | tr '\n' ';')
	[ "$last" = "$(tr '\n' ';' <<<"$expected2")" ]
}
until_ok 30 "P1's search to return exactly the 2 remaining matching slots" gone P1
until_ok 30 "P2's search to return exactly the 2 remaining matching slots" gone P2
say "a search no longer returns it, and still returns the other 2:"
search P2 | slot_lines | sed 's/^/  /'

ok=1
say "PASS"
