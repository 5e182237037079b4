package main

import "testing"

// "(1 hops)" in qpc inbox (issue 9 item 7): one hop is singular.
func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 hops"}, {1, "1 hop"}, {2, "2 hops"}} {
		if got := plural(c.n, "hop"); got != c.want {
			t.Fatalf("plural(%d, hop) = %q, want %q", c.n, got, c.want)
		}
	}
}
