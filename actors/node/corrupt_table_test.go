package node

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// A routing table on disk that cannot be read (not JSON, JSON of the
// wrong shape, a route that is not valid) does not stop the node: it
// starts with no routes, says so in one WARN line, and learns its routes
// again from the next announces, the same frames a neighbour's dump
// gives it as well as newer ones.
func TestCorruptRouterTableStartsAndRelearns(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, old []byte) []byte
	}{
		{"not json", func(*testing.T, []byte) []byte { return []byte(`{"Table": {"Routes": [garbage`) }},
		{"wrong shape", func(*testing.T, []byte) []byte { return []byte(`{"Table": {"Routes": "not a list"}, "Keys": 7}`) }},
		{"invalid route", func(t *testing.T, old []byte) []byte {
			var sv map[string]any
			if err := json.Unmarshal(old, &sv); err != nil {
				t.Fatal(err)
			}
			routes := sv["Table"].(map[string]any)["Routes"].([]any)
			routes[0].(map[string]any)["Hops"] = 0
			b, err := json.Marshal(sv)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t)
			c.Transports.Listen = nil
			n, _ := startNode(t, c)
			peer := newIdentity(t)
			frame := announceFrame(t, peer)
			n.Inject("test", peer.Address(), frame)
			waitRoute(t, n, peer.Address())
			if err := n.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}

			db, err := bolt.Open(c.DBPath(), 0o600, &bolt.Options{Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error {
				bk := tx.Bucket([]byte("router"))
				if bk == nil {
					t.Fatal("no router bucket after a stop")
				}
				old := bk.Get([]byte("router/table"))
				if old == nil {
					t.Fatal("no router/table after a stop")
				}
				return bk.Put([]byte("router/table"), tc.corrupt(t, append([]byte(nil), old...)))
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			n2, logs := startNode(t, c)
			rs, err := n2.Routes(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(rs) != 0 {
				t.Fatalf("routes from a corrupt table: %+v", rs)
			}
			var warns []string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, `msg="routing table not restored"`) {
					warns = append(warns, l)
				}
			}
			if len(warns) != 1 || !strings.Contains(warns[0], "level=WARN") || !strings.Contains(warns[0], "err=") {
				t.Fatalf("want one WARN line with the error, got %q\n%s", warns, logs)
			}
			// The same announce again (a neighbour's dump), then a new peer.
			n2.Inject("test", peer.Address(), frame)
			waitRoute(t, n2, peer.Address())
			other := newIdentity(t)
			n2.Inject("test", other.Address(), announceFrame(t, other))
			waitRoute(t, n2, other.Address())
		})
	}
}
