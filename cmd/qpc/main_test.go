package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
)

func nodeFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	cmd := newNodeCmd(nil)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	return cmd.Flags()
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "qpc.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigPrecedence(t *testing.T) {
	file := writeFile(t, `
data_dir = "/from/file"
[api]
addr = "127.0.0.1:1111"
[announce]
interval = "20m"
max_hops = 5
[logging]
level = "debug"
`)
	env := []string{"QPC_API_ADDR=127.0.0.1:2222", "QPC_ANNOUNCE_MAX_HOPS=6", "QPC_TRANSPORTS_PEERS=tcp://10.0.0.1:7701, quic://10.0.0.2:7702", "HOME=/x"}
	flags := nodeFlags(t, "--api", "127.0.0.1:3333")

	c, err := loadConfig(file, flags, env)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"default (nothing set)", c.Routing.RouteTTL.D().String(), "30m0s"},
		{"file beats default", c.Announce.Interval.D().String(), "20m0s"},
		{"file beats default", c.DataDir, "/from/file"},
		{"file beats default", c.Logging.Level, "debug"},
		{"env beats file", strconv.Itoa(c.Announce.MaxHops), "6"},
		{"env list", strings.Join(c.Transports.Peers, " "), "tcp://10.0.0.1:7701 quic://10.0.0.2:7702"},
		{"flag beats env and file", c.API.Addr, "127.0.0.1:3333"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %q, want %q", ch.name, ch.got, ch.want)
		}
	}

	// Without the flag the environment wins over the file.
	c, err = loadConfig(file, nodeFlags(t), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.API.Addr != "127.0.0.1:2222" {
		t.Errorf("env over file: api.addr = %s", c.API.Addr)
	}
	// Repeated --listen flags replace the list.
	c, err = loadConfig("", nodeFlags(t, "--listen", "tcp://127.0.0.1:9001", "--listen", "quic://127.0.0.1:9002"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Transports.Listen, " "); got != "tcp://127.0.0.1:9001 quic://127.0.0.1:9002" {
		t.Errorf("--listen: %s", got)
	}
}

func TestConfigProfileSelectsDefaults(t *testing.T) {
	c, err := loadConfig("", nodeFlags(t, "--profile", "constrained"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.MaxRoutes != config.Constrained().Routing.MaxRoutes {
		t.Fatalf("constrained max_routes = %d", c.Routing.MaxRoutes)
	}
	// A file value still beats the profile's default.
	c, err = loadConfig(writeFile(t, "profile = \"constrained\"\n[routing]\nmax_routes = 77\n"), nodeFlags(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Profile != "constrained" || c.Routing.MaxRoutes != 77 || c.Store.MaxTotal != config.Constrained().Store.MaxTotal {
		t.Fatalf("profile from file: %+v", c)
	}
}

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name string
		args []string
		env  []string
		file string
		code int
		msg  string
	}{
		{"negative interval in file", []string{"node"}, nil, "[announce]\ninterval = \"-5m\"\n", 2, "announce.interval"},
		{"unknown scheme flag", []string{"node", "--listen", "udp://127.0.0.1:1"}, nil, "", 2, "transports.listen[0]"},
		{"unknown key in file", []string{"node"}, nil, "[announce]\nintervall = \"5m\"\n", 2, "intervall"},
		{"bad duration", []string{"node"}, nil, "[announce]\ninterval = \"soon\"\n", 2, "announce.interval"},
		{"bad env", []string{"node"}, []string{"QPC_LOGGING_LEVEL=loud"}, "", 2, "logging.level"},
		{"api off loopback without token", []string{"node", "--api", "0.0.0.0:7780"}, nil, "", 2, "api.token"},
		{"unknown flag", []string{"node", "--frobnicate"}, nil, "", 2, "frobnicate"},
		{"unknown command", []string{"frobnicate"}, nil, "", 2, "unknown command"},
		{"extra argument", []string{"genconf", "x"}, nil, "", 2, "takes no arguments"},
		{"missing config file", []string{"node", "--config", filepath.Join(dir, "nope.toml")}, nil, "", 2, "nope.toml"},
		{"status without node", []string{"status", "--api", "127.0.0.1:1"}, nil, "", 1, "is a node running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string(nil), tc.args...)
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			if tc.args[0] == "node" {
				args = append(args, "--data-dir", t.TempDir())
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb, tc.env)
			if code != tc.code || !strings.Contains(errb.String(), tc.msg) {
				t.Fatalf("code %d, stderr %q; want code %d mentioning %q", code, errb.String(), tc.code, tc.msg)
			}
		})
	}
}

func TestGenconfThenNodeConfigLoads(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"genconf"}, &out, &errb, nil); code != 0 {
		t.Fatalf("genconf: %d %s", code, errb.String())
	}
	c, err := loadConfig(writeFile(t, out.String()), nodeFlags(t), nil)
	if err != nil {
		t.Fatalf("genconf output does not load: %v", err)
	}
	if c.Announce.Interval.D() != 10*time.Minute || c.API.Addr != "127.0.0.1:7780" {
		t.Fatalf("loaded %+v", c)
	}
	out.Reset()
	if code := run([]string{"genconf", "--profile", "constrained"}, &out, &errb, nil); code != 0 || !strings.Contains(out.String(), "profile = 'constrained'") {
		t.Fatalf("genconf --profile constrained: %d\n%s", code, out.String())
	}
}

func TestKeygenRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "id.pem")
	var out, errb bytes.Buffer
	if code := run([]string{"keygen", "--out", path}, &out, &errb, nil); code != 0 {
		t.Fatalf("keygen: %d %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "address ") {
		t.Fatalf("keygen output %q", out.String())
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	if code := run([]string{"keygen", "--out", path}, &out, &errb, nil); code != 1 {
		t.Fatalf("second keygen exit %d, want 1", code)
	}
}

func TestLoRaAirtimeCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"lora", "airtime", "--sf", "7", "--bw", "125000", "--cr", "5", "--len", "20"}, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if got := strings.TrimSpace(out.String()); got != "56.576 ms" {
		t.Fatalf("airtime = %q, want 56.576 ms", got)
	}
	out.Reset()
	if code := run([]string{"lora", "airtime", "--sf", "9", "--len", "13", "--json"}, &out, &errb, nil); code != 0 || !strings.Contains(out.String(), `"airtime_ms": 164.864`) {
		t.Fatalf("json: %d %s", code, out.String())
	}
	errb.Reset()
	if code := run([]string{"lora", "airtime", "--sf", "13"}, &out, &errb, nil); code != 2 || !strings.Contains(errb.String(), "SF") {
		t.Fatalf("bad SF: exit %d, %s", code, errb.String())
	}
}

func TestSizesCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"sizes", "--json"}, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var body struct {
		Sizes []struct {
			Name  string `json:"name"`
			Bytes int    `json:"bytes"`
		} `json:"sizes"`
	}
	if err := json.Unmarshal(out.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range body.Sizes {
		got[r.Name] = r.Bytes
	}
	// The targets of the mesh issue: announce ≤ 167 B (Reticulum's), a
	// sealed 32-byte text ≤ 200 B.
	if got["announce"] == 0 || got["announce"] > 167 || got["envelope-sealed-32"] == 0 || got["envelope-sealed-32"] > 200 {
		t.Fatalf("sizes %v", got)
	}
}

// Text from the mesh cannot drive the operator's terminal: control
// characters, bidi overrides and bytes that are not UTF-8 are shown
// escaped; ordinary text (any script) is shown as it is.
func TestInboxTextShownEscaped(t *testing.T) {
	cases := []struct {
		e    api.InboxEntry
		want string
	}{
		{api.InboxEntry{Text: "hello, wörld ✓"}, "hello, wörld ✓"},
		{api.InboxEntry{Text: "\x1b[31mRED\x07", Encoding: api.EncodingUTF8}, `\x1b[31mRED\x07`},
		{api.InboxEntry{Text: "a\u202eb\r\nc\\d"}, `a\u202eb\x0d\x0ac\\d`},
		{api.InboxEntry{Text: base64.StdEncoding.EncodeToString([]byte{'o', 'k', 0xff, 0x1b}), Encoding: api.EncodingBase64}, `ok\xff\x1b`},
	}
	for _, c := range cases {
		if got := shown(c.e); got != c.want {
			t.Errorf("shown(%q) = %q, want %q", c.e.Text, got, c.want)
		}
	}
}
