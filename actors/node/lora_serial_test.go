package node

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/quicprochat/qpc/internal/api"
	"github.com/quicprochat/qpc/internal/config"
	"github.com/quicprochat/qpc/internal/probe"
	"github.com/quicprochat/qpc/transports/lora/link"
	"github.com/quicprochat/qpc/transports/lora/rnode"
)

// emulatorPort is an emulated RNode behind a path the test can unplug.
func emulatorPort(t *testing.T, name string, ec rnode.EmulatorConfig) *rnode.EmulatorPort {
	t.Helper()
	p, err := rnode.NewEmulatorPort(filepath.Join(t.TempDir(), name), ec)
	if err != nil {
		t.Skipf("SKIP: no pseudo-terminal here: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// radioStatus is the node's one radio as /v1/status shows it.
func radioStatus(t *testing.T, n *Node) api.Radio {
	t.Helper()
	var st api.Status
	if err := (&api.Client{Addr: n.APIAddr()}).Get(context.Background(), "/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Radios) != 1 {
		t.Fatalf("radios %+v, want one", st.Radios)
	}
	return st.Radios[0]
}

// The transmit power (issue 12 item 4, acceptance 5): a txp= within the
// sub-band's limit goes to the modem, its echo is checked, and status
// shows it with the limit; without txp= the node asks for the region's
// limit, which a board that clamps lower may answer with its own maximum;
// a modem that echoes another power than the one asked is refused; a txp
// above the limit is a config error naming the limit.
func TestLoRaSerialTxPower(t *testing.T) {
	port := emulatorPort(t, "rnode", rnode.EmulatorConfig{})
	c := testConfig(t)
	c.Transports.Listen = []string{"lora+serial://" + port.Path() + "?sf=7&freq=868100000&txp=10"}
	n, _ := startNode(t, c)
	emu, _ := port.Emulator()
	if got := emu.State().TxPower; got != 10 {
		t.Errorf("the modem was set to %d dBm, want 10", got)
	}
	r := radioStatus(t, n)
	if r.TxPower != 10 || r.TxPowerLimit != 14 || r.SubBand != "868.0-868.6" || r.State != "up" || r.Transport != "lora+serial" || r.Region != "EU868" {
		t.Errorf("radio status %+v", r)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The default on 869.525 MHz: 27 dBm asked, a 17 dBm board accepted.
	clamped := emulatorPort(t, "sx1276", rnode.EmulatorConfig{MaxTxPower: 17})
	c = testConfig(t)
	c.Transports.Listen = []string{"lora+serial://" + clamped.Path() + "?sf=7&freq=869525000"}
	n, _ = startNode(t, c)
	if r := radioStatus(t, n); r.TxPower != 17 || r.TxPowerLimit != 27 || r.SubBand != "869.4-869.65" {
		t.Errorf("default power on a 17 dBm board: %+v", r)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A wrong echo of the power asked is refused.
	wrong := emulatorPort(t, "wrong", rnode.EmulatorConfig{Echo: func(cmd byte, v []byte) []byte {
		if cmd == rnode.CmdTxPower {
			return []byte{v[0] + 1}
		}
		return v
	}})
	c = testConfig(t)
	c.Transports.Listen = []string{"lora+serial://" + wrong.Path() + "?sf=7&freq=868100000&txp=12"}
	bad, err := New(WithConfig(c), WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	err = bad.Start(context.Background())
	var me *rnode.MismatchError
	if !errors.As(err, &me) || me.Param != "TxPower" || me.Asked != 12 || me.Echoed != 13 {
		t.Fatalf("start with a modem echoing another power: %v", err)
	}

	// Above the limit: refused before the port is touched.
	c = testConfig(t)
	c.Transports.Listen = []string{"lora+serial://" + port.Path() + "?sf=7&freq=868100000&txp=20"}
	_, err = New(WithConfig(c), WithLogger(discard()))
	if !errors.Is(err, config.ErrInvalid) || !strings.Contains(err.Error(), "at most 14 dBm") || !strings.Contains(err.Error(), "868.0-868.6") {
		t.Fatalf("txp above the limit: %v, want a config error naming the 14 dBm limit of 868.0-868.6 MHz", err)
	}
}

// metricValue is the value of the node's metric name with label radio.
func metricValue(t *testing.T, g prometheus.Gatherer, name, radio string) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelIs(m, "radio", radio) {
				if m.Gauge != nil {
					return m.Gauge.GetValue()
				}
				return m.Counter.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s{radio=%q}", name, radio)
	return 0
}

func labelIs(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// A modem that vanishes and comes back (issue 12 item 5, acceptance 6):
// two nodes on two emulated RNodes sharing the air. A's modem is
// unplugged: status, /readyz and qpc_lora_radio_up show the radio down
// and its link ends, the node keeps running; it is plugged in again at
// the same path: the node re-opens it, re-applies every setting, links
// with B again, and a message from A reaches B over it, without a
// restart.
func TestLoRaSerialModemComesBack(t *testing.T) {
	pa := emulatorPort(t, "rnode-a", rnode.EmulatorConfig{})
	pb := emulatorPort(t, "rnode-b", rnode.EmulatorConfig{})
	stop := make(chan struct{})
	defer close(stop)
	rnode.ShareAir(pa, pb, stop)
	fast := withRNodeConfig(func(c *rnode.Config) {
		c.ReconnectMin, c.ReconnectMax = 10*time.Millisecond, 100*time.Millisecond
	})
	ca := testConfig(t)
	ca.Transports.Listen = []string{"lora+serial://" + pa.Path() + "?sf=7&freq=869525000&txp=14"}
	a, _ := startNode(t, ca, fast)
	cb := testConfig(t)
	cb.Transports.Listen = []string{"lora+serial://" + pb.Path() + "?sf=7&freq=869525000&txp=14"}
	b, _ := startNode(t, cb, fast)
	waitLink(t, a, b.Address(), "lora")
	waitRoute(t, a, b.Address())
	base := "http://" + a.APIAddr()
	g := a.metrics.Registry
	if v := metricValue(t, g, "qpc_lora_radio_up", pa.Path()); v != 1 {
		t.Fatalf("qpc_lora_radio_up = %v before the modem went away", v)
	}

	if err := pa.Vanish(); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 15*time.Second, func() bool { return radioStatus(t, a).State == "down" }, "A's radio shown down")
	probe.Until(t, 15*time.Second, func() bool { return !hasLoRaLink(a) }, "A's LoRa link ended with the radio down")
	if v := metricValue(t, g, "qpc_lora_radio_up", pa.Path()); v != 0 {
		t.Errorf("qpc_lora_radio_up = %v while the modem is away", v)
	}
	code, body := get(t, base+"/readyz")
	if code != 200 || !strings.Contains(body, "lora radio "+pa.Path()+" down") {
		t.Errorf("/readyz while the modem is away = %d %q, want 200 naming the radio down", code, body)
	}
	if r := radioStatus(t, a); r.LastError == "" {
		t.Errorf("down radio without its cause: %+v", r)
	}

	emu, err := pa.Return()
	if err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 15*time.Second, func() bool { return radioStatus(t, a).State == "up" }, "A's radio shown up again")
	if r := radioStatus(t, a); r.Reopens != 1 || r.TxPower != 14 {
		t.Errorf("radio after the re-open: %+v", r)
	}
	if s := emu.State(); !s.RadioOn || s.TxPower != 14 || s.SF != 7 || s.Frequency != 869_525_000 {
		t.Errorf("the new modem's settings: %+v", s)
	}
	if v := metricValue(t, g, "qpc_lora_radio_reopens_total", pa.Path()); v != 1 {
		t.Errorf("qpc_lora_radio_reopens_total = %v", v)
	}
	if _, body := get(t, base+"/readyz"); strings.Contains(body, "down") {
		t.Errorf("/readyz after the re-open: %q", body)
	}
	waitLink(t, a, b.Address(), "lora")

	if _, err := a.SendText(context.Background(), b.Address(), []byte("the modem is back")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-b.Deliveries():
		if string(m.Text) != "the modem is back" || m.From != a.Address() {
			t.Fatalf("B got %+v", m)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("A's message did not reach B after the modem came back")
	}
	if emu.Stats().Transmitted == 0 {
		t.Error("the message did not go through the re-opened modem")
	}
}

// hasLoRaLink reports whether n has a link over LoRa (or cannot tell).
func hasLoRaLink(n *Node) bool {
	ls, err := n.Links(context.Background())
	if err != nil {
		return true
	}
	for _, l := range ls {
		if l.Transport == "lora" {
			return true
		}
	}
	return false
}

// The modem stays away until B has given the link up (B's message to A
// went unacknowledged through every round, A silent for B's window):
// when it is back, A greets
// the channel, B links with A again, and both messages arrive: A's sent
// after the re-open, and B's sent while A was away (retransmitted end to
// end).
func TestLoRaSerialModemAwayUntilPeerGivesUp(t *testing.T) {
	pa := emulatorPort(t, "rnode-a", rnode.EmulatorConfig{})
	pb := emulatorPort(t, "rnode-b", rnode.EmulatorConfig{})
	stop := make(chan struct{})
	defer close(stop)
	rnode.ShareAir(pa, pb, stop)
	fast := withRNodeConfig(func(c *rnode.Config) {
		c.ReconnectMin, c.ReconnectMax = 10*time.Millisecond, 100*time.Millisecond
	})
	// B gives the link up once A has been silent for 2 s (not the two
	// HELLO intervals of the default); frames given up before are dropped
	// alone and retransmitted end to end.
	silence := withLinkOptions(func(o *link.Options) { o.PeerSilence = 2 * time.Second })
	cfg := func(p *rnode.EmulatorPort) config.Config {
		c := testConfig(t)
		c.Transports.Listen = []string{"lora+serial://" + p.Path() + "?sf=7&freq=869525000"}
		c.Outbox.RetryBase = config.Duration(500 * time.Millisecond)
		c.Outbox.RetryMax = config.Duration(2 * time.Second)
		return c
	}
	a, _ := startNode(t, cfg(pa), fast, silence)
	b, _ := startNode(t, cfg(pb), fast, silence)
	waitLink(t, a, b.Address(), "lora")
	waitLink(t, b, a.Address(), "lora")
	waitRoute(t, a, b.Address())
	waitRoute(t, b, a.Address())

	if err := pa.Vanish(); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 15*time.Second, func() bool { return radioStatus(t, a).State == "down" }, "A's radio shown down")
	if _, err := b.SendText(context.Background(), a.Address(), []byte("while you were away")); err != nil {
		t.Fatal(err)
	}
	probe.Until(t, 60*time.Second, func() bool { return !hasLoRaLink(b) }, "B gives its LoRa link to A up")

	if _, err := pa.Return(); err != nil {
		t.Fatal(err)
	}
	waitLink(t, b, a.Address(), "lora")
	if _, err := a.SendText(context.Background(), b.Address(), []byte("back again")); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		n    *Node
		text string
	}{{b, "back again"}, {a, "while you were away"}} {
		select {
		case m := <-w.n.Deliveries():
			if string(m.Text) != w.text {
				t.Fatalf("got %q, want %q", m.Text, w.text)
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("%q was not delivered after the modem came back", w.text)
		}
	}
}
