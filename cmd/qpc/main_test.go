package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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
		{"api port out of range", []string{"node", "--api", "127.0.0.1:99999"}, nil, "", 2, "api.addr"},
		{"lora spreading factor out of range", []string{"node", "--listen", "lora+mock://ch?sf=14"}, nil, "", 2, "want 5 to 12 for sf"},
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

// Issue 9.3: a profile means the same with or without a file. A genconf
// file pins nothing: with --profile constrained (or QPC_PROFILE) the node
// runs with the constrained values, and only values changed in the file
// are the operator's.
func TestGenconfFileFollowsProfile(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"genconf"}, &out, &errb, nil); code != 0 {
		t.Fatalf("genconf: %d %s", code, errb.String())
	}
	file := writeFile(t, out.String())
	cons := config.Constrained()
	for name, load := range map[string]func() (config.Config, error){
		"flag": func() (config.Config, error) { return loadConfig(file, nodeFlags(t, "--profile", "constrained"), nil) },
		"env": func() (config.Config, error) {
			return loadConfig(file, nodeFlags(t), []string{"QPC_PROFILE=constrained"})
		},
	} {
		c, err := load()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Profile != "constrained" || c.Announce.Interval.D() != 60*time.Minute || c.Transports.QueueFrames != 64 ||
			c.Routing.MaxRoutes != cons.Routing.MaxRoutes || c.Transports.MaxFrameSize != cons.Transports.MaxFrameSize {
			t.Errorf("%s: genconf file + constrained profile: profile %s interval %s queue_frames %d max_routes %d",
				name, c.Profile, c.Announce.Interval.D(), c.Transports.QueueFrames, c.Routing.MaxRoutes)
		}
	}
	// A value changed in the genconf file is the operator's and stays.
	edited := strings.Replace(out.String(), "queue_frames = 1024", "queue_frames = 500", 1)
	c, err := loadConfig(writeFile(t, edited), nodeFlags(t, "--profile", "constrained"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Transports.QueueFrames != 500 || c.Announce.Interval.D() != 60*time.Minute {
		t.Fatalf("edited genconf file: queue_frames %d interval %s", c.Transports.QueueFrames, c.Announce.Interval.D())
	}
	// A hand-written file without a profile key states only choices.
	c, err = loadConfig(writeFile(t, "[announce]\ninterval = \"10m\"\n"), nodeFlags(t, "--profile", "constrained"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Announce.Interval.D() != 10*time.Minute || c.Transports.QueueFrames != 64 {
		t.Fatalf("file without profile: interval %s queue_frames %d", c.Announce.Interval.D(), c.Transports.QueueFrames)
	}
}

func TestConfigShow(t *testing.T) {
	file := writeFile(t, "profile = \"default\"\n[routing]\nmax_routes = 77\n[announce]\ninterval = \"10m\"\n")
	env := []string{"QPC_API_ADDR=127.0.0.1:2222", "QPC_API_TOKEN=s3cret"}
	args := []string{"config", "show", "--config", file, "--profile", "constrained", "--log-level", "debug"}
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb, env); code != 0 {
		t.Fatalf("config show: %d %s", code, errb.String())
	}
	text := out.String()
	for _, want := range []struct{ value, source string }{
		{"profile = 'constrained'", "# flag --profile"},
		{"max_routes = 77", "# file " + file},
		{"interval = '1h0m0s'", "# profile constrained"}, // 10m is the file profile's default: not a change
		{"queue_frames = 64", "# profile constrained"},
		{"key_file = 'identity.pem'", "# default"},
		{"addr = '127.0.0.1:2222'", "# env QPC_API_ADDR"},
		{"token = '***'", "# env QPC_API_TOKEN"},
		{"level = 'debug'", "# flag --log-level"},
	} {
		found := false
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, want.value+" ") && strings.Contains(line, want.source) {
				found = true
			}
		}
		if !found {
			t.Errorf("no line %q … %q in\n%s", want.value, want.source, text)
		}
	}
	if strings.Contains(text, "s3cret") {
		t.Error("config show prints the API token")
	}

	out.Reset()
	if code := run(append(args, "--json"), &out, &errb, env); code != 0 {
		t.Fatalf("config show --json: %d %s", code, errb.String())
	}
	var body struct {
		Profile string `json:"profile"`
		Keys    []struct {
			Key    string `json:"key"`
			Value  any    `json:"value"`
			Source string `json:"source"`
			From   string `json:"from"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(out.Bytes(), &body); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	got := map[string]string{}
	for _, k := range body.Keys {
		got[k.Key] = k.Source + " " + k.From + " = " + strings.TrimSpace(strings.ReplaceAll(string(mustJSON(t, k.Value)), "\n", ""))
	}
	for key, want := range map[string]string{
		"profile":                 `flag --profile = "constrained"`,
		"routing.max_routes":      "file " + file + " = 77",
		"announce.interval":       `profile constrained = "1h0m0s"`,
		"transports.queue_frames": "profile constrained = 64",
		"store.ttl":               `default  = "168h0m0s"`,
		"api.addr":                `env QPC_API_ADDR = "127.0.0.1:2222"`,
		"api.token":               `env QPC_API_TOKEN = "***"`,
		"transports.listen":       `default  = ["tcp://127.0.0.1:7701","quic://127.0.0.1:7702"]`,
	} {
		if got[key] != want {
			t.Errorf("json %s: %q, want %q", key, got[key], want)
		}
	}
	if body.Profile != "constrained" || len(body.Keys) != len(config.Keys()) {
		t.Errorf("json: profile %q, %d keys", body.Profile, len(body.Keys))
	}

	// The printed configuration loads as a file and means the same.
	out.Reset()
	run([]string{"config", "show", "--config", file}, &out, &errb, nil)
	c, err := loadConfig(writeFile(t, out.String()), nodeFlags(t), nil)
	if err != nil || c.Routing.MaxRoutes != 77 {
		t.Fatalf("config show output does not load back: %v\n%s", err, out.String())
	}

	// An invalid configuration is shown, then refused with exit 2.
	out.Reset()
	errb.Reset()
	code := run([]string{"config", "show"}, &out, &errb, []string{"QPC_ANNOUNCE_MAX_HOPS=99"})
	if code != 2 || !strings.Contains(out.String(), "max_hops = 99") || !strings.Contains(out.String(), "env QPC_ANNOUNCE_MAX_HOPS") ||
		!strings.Contains(errb.String(), "announce.max_hops") {
		t.Fatalf("invalid config: exit %d, out %q, err %q", code, out.String(), errb.String())
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An unknown QPC_* variable is refused like an unknown key in the file;
// every variable the CLI documents keeps working.
func TestConfigUnknownEnvRefused(t *testing.T) {
	var out, errb bytes.Buffer
	code := run([]string{"node", "--data-dir", t.TempDir()}, &out, &errb, []string{"QPC_ANNOUNCE_INTERVALL=5m"})
	if code != 2 || !strings.Contains(errb.String(), "QPC_ANNOUNCE_INTERVALL") || !strings.Contains(errb.String(), "did you mean QPC_ANNOUNCE_INTERVAL?") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	errb.Reset()
	if code := run([]string{"config", "show"}, &out, &errb, []string{"QPC_FROBNICATE=1"}); code != 2 || !strings.Contains(errb.String(), "QPC_FROBNICATE") {
		t.Fatalf("config show with QPC_FROBNICATE: exit %d, %q", code, errb.String())
	}
	env := []string{"QPC_API_ADDR=127.0.0.1:7790", "QPC_API_TOKEN=t", "QPC_PROFILE=constrained", "QPC_TEST_LOG=1",
		"QPC_IDENTITY_KEY_FILE=/k.pem", "QPC_OUTBOX_MAX_PENDING=100", "QPC_TRANSPORTS_PEERS=tcp://a:1"}
	c, err := loadConfig("", nodeFlags(t), env)
	if err != nil {
		t.Fatalf("documented variables refused: %v", err)
	}
	if c.API.Addr != "127.0.0.1:7790" || c.API.Token != "t" || c.Profile != "constrained" || c.Identity.KeyFile != "/k.pem" || c.Outbox.MaxPending != 100 {
		t.Fatalf("documented variables not applied: %+v", c)
	}
	def := config.Default()
	for _, k := range config.Keys() {
		if _, err := loadConfig("", nodeFlags(t), []string{k.Env() + "=" + fmt.Sprint(def.Get(k.Name))}); err != nil &&
			strings.Contains(err.Error(), "unknown") {
			t.Errorf("%s: %v", k.Env(), err)
		}
	}
}

// A duration without a unit is refused, naming the field and asking for a
// unit, instead of meaning nanoseconds.
func TestConfigDurationNeedsUnit(t *testing.T) {
	for name, tc := range map[string]struct {
		file string
		env  []string
	}{
		"file number": {"[announce]\ninterval = 600\n", nil},
		"file string": {"[announce]\ninterval = \"600\"\n", nil},
		"env":         {"", []string{"QPC_ANNOUNCE_INTERVAL=600"}},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string{"node", "--data-dir", t.TempDir()}
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb, tc.env)
			if code != 2 || !strings.Contains(errb.String(), "announce.interval") ||
				!strings.Contains(errb.String(), "a duration with a unit, e.g. 600s or 10m") {
				t.Fatalf("exit %d, stderr %q", code, errb.String())
			}
		})
	}
	c, err := loadConfig(writeFile(t, "[announce]\ninterval = \"600s\"\n"), nodeFlags(t), []string{"QPC_STORE_TTL=48h"})
	if err != nil || c.Announce.Interval.D() != 10*time.Minute || c.Store.TTL.D() != 48*time.Hour {
		t.Fatalf("durations with units: %v %v", c.Announce.Interval.D(), err)
	}
}

// TOML syntax errors give the line and column; values of the wrong type
// name the key and what it takes, in our words.
func TestConfigFileErrorsInOurWords(t *testing.T) {
	cases := []struct{ name, file, env, want string }{
		{"syntax", "[announce]\nmax_hops = 8\ninterval = \"10m\n", "", "line 3, column"},
		{"syntax key", "data_dir = '/x'\n[api\naddr = '1'\n", "", "line 2, column"},
		{"word for number", "[announce]\nmax_hops = \"eight\"\n", "", `announce.max_hops: "eight" is not a whole number`},
		{"fraction for number", "[routing]\nmax_routes = 1.5\n", "", "routing.max_routes: 1.5 is not a whole number"},
		{"env word for number", "", "QPC_ANNOUNCE_MAX_HOPS=eight", `announce.max_hops: "eight" is not a whole number (from QPC_ANNOUNCE_MAX_HOPS)`},
		{"bool", "[transports]\ndiscovery = \"maybe\"\n", "", `transports.discovery: "maybe" is not true or false`},
		{"number for text", "[api]\naddr = 7780\n", "", "api.addr: 7780 is not text"},
		{"list", "[transports]\npeers = [1, 2]\n", "", "transports.peers: [1, 2] is not a list of quoted strings"},
		{"section as value", "announce = 5\n", "", "announce is a section"},
		{"value as section", "[api.addr]\nx = 1\n", "", "api.addr is a value, not a section"},
		{"unknown key suggests", "[routing]\nmax_route = 5\n", "", "unknown key routing.max_route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"node", "--data-dir", t.TempDir()}
			if tc.file != "" {
				args = append(args, "--config", writeFile(t, tc.file))
			}
			var env []string
			if tc.env != "" {
				env = []string{tc.env}
			}
			var out, errb bytes.Buffer
			code := run(args, &out, &errb, env)
			if code != 2 || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tc.want)
			}
			if strings.Contains(errb.String(), "expected type") || strings.Contains(errb.String(), "decoding") {
				t.Fatalf("decoder's words in %q", errb.String())
			}
		})
	}
}

// --api without a port is refused as bad usage (it meant port 80), and a
// usage hint names the command as it is typed.
func TestAPIAddrNeedsPortAndHintsNameTheCommand(t *testing.T) {
	for _, args := range [][]string{{"status", "--api", "localhost"}, {"inbox", "--api", "127.0.0.1"}} {
		_, errOut, code := runQPC(t, args...)
		if code != 2 || !strings.Contains(errOut, "want HOST:PORT") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	_, errOut, code := runQPC(t, "--no-such-flag")
	if code != 2 || strings.Contains(errOut, "qpc qpc") || !strings.Contains(errOut, "see 'qpc --help'") {
		t.Errorf("root flag error: exit %d, %q", code, errOut)
	}
	_, errOut, _ = runQPC(t, "send", "--no-such-flag")
	if !strings.Contains(errOut, "see 'qpc send --help'") {
		t.Errorf("send flag error: %q", errOut)
	}
}

func runQPC(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb, nil)
	return out.String(), errb.String(), code
}

// An entry the node cannot read is shown by its number and why, between
// the messages around it, and `qpc inbox` goes on past it.
func TestInboxShowsDamagedEntry(t *testing.T) {
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	res := api.InboxResponse{Last: 3, Messages: []api.InboxEntry{
		{Seq: 1, From: "aa", Text: "one", At: at, Hops: 1},
		{Seq: 2, Damaged: "record does not decode: invalid character '\x1b'"},
		{Seq: 3, From: "bb", Text: "three", At: at, Hops: 2},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/inbox" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"inbox", "--api", strings.TrimPrefix(srv.URL, "http://")}, &out, &errb, nil); code != 0 {
		t.Fatalf("inbox: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], ": one") || !strings.HasSuffix(lines[2], ": three") {
		t.Fatalf("inbox printed:\n%s", out.String())
	}
	if want := `#2 cannot be read (record does not decode: invalid character '\x1b'); it stays in qpc.db: see 'qpc db check'`; lines[1] != want {
		t.Fatalf("damaged entry shown as\n%q, want\n%q", lines[1], want)
	}
}
