package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealth: exit 0 on a 200 from /healthz, 1 when the node answers
// otherwise or not at all; --ready asks /readyz with the token.
func TestHealth(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			w.Write([]byte("ok\n"))
		case "/readyz":
			gotAuth = r.Header.Get("Authorization")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	var out, errb bytes.Buffer
	if code := run([]string{"health", "--api", addr}, &out, &errb, nil); code != exitOK || !strings.Contains(out.String(), "ok /healthz") {
		t.Fatalf("health: %d %q %q", code, out.String(), errb.String())
	}
	if code := run([]string{"health", "--ready", "--api", addr}, &out, &errb, []string{"QPC_API_TOKEN=s3cret"}); code != exitFailure || gotAuth != "Bearer s3cret" {
		t.Fatalf("health --ready on a 503: %d (auth %q) %q", code, gotAuth, errb.String())
	}
	srv.Close()
	if code := run([]string{"health", "--api", addr, "--timeout", "1s"}, &out, &errb, nil); code != exitFailure {
		t.Fatalf("health with no node: %d", code)
	}
}
