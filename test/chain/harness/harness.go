// Package harness runs the three-process chain A — B — C on loopback (A
// dials B, B dials C, over TCP or QUIC), sends N sealed texts from A to C
// through A's admin API with concurrent HTTP clients, optionally kills the
// relay and stops the receiver while it sends, and checks that C got every
// text exactly once and that A reports every message delivered. It also
// measures what the run cost (wall time, CPU of each process) against the
// crypto bound of the same machine (see Bound).
//
// It is used by the command in test/chain (go run ./test/chain), by
// `make bench-chain`, and by test/chain_e2e_test.go.
//
// The admin API it speaks: POST /v1/send {"to","text"} → {"id","status"},
// or 429 with Retry-After when A's outbox is full (wait, send the same text
// again); GET /v1/messages/{id} → {"state": queued|sent|delivered|failed,
// "attempts", "reason"}; GET /v1/inbox?after=SEQ → {"messages":[{"seq",
// "id","from","text","at","hops"}],"last"}; GET /v1/status, /v1/routes,
// /readyz and /metrics.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config is one invocation of the harness.
type Config struct {
	// Bin is the qpc binary. Empty: Run builds ./cmd/qpc into a temporary
	// directory once.
	Bin string
	// Transports to run the chain over, one after the other, each with
	// fresh nodes: "tcp", "quic". Default: both.
	Transports []string
	// N is how many texts A sends to C (default 10000); Clients how many
	// HTTP clients send them concurrently (default 8).
	N, Clients int
	// Batch, when above 1, sends that many texts per POST /v1/send (the
	// batch form: one group commit at A for all of them).
	Batch int

	// KillRelay SIGKILLs B this many times, evenly spread over the sends
	// (2: at about 1/3 and 2/3), restarting it at once on the same data
	// directory and ports.
	KillRelay int
	// StopReceiver SIGTERMs C when half the texts are sent and restarts it
	// after ReceiverDown (default 2s).
	StopReceiver bool
	ReceiverDown time.Duration

	// DeliverTimeout bounds the wait, after the last send, for C's inbox
	// to hold every text (default 3m). StatesTimeout bounds the wait for A
	// to report every message delivered (default 30s). ReadyTimeout
	// bounds a node's start (default 30s).
	DeliverTimeout, StatesTimeout, ReadyTimeout time.Duration

	// BoundIterations for MeasureBound (default 2000; negative: skip it).
	BoundIterations int

	// WorkDir holds one directory per run (nodes' data and logs). Empty: a
	// temporary directory, removed afterwards unless the run failed or
	// Keep is set.
	WorkDir string
	Keep    bool
	// NodeArgs are added to every `qpc node` command line, NodeEnv
	// (KEY=VALUE, e.g. QPC_OUTBOX_MAX_PENDING=100) to every node's
	// environment.
	NodeArgs, NodeEnv []string

	// Progress gets a line every ProgressEvery (default 2s) while a run
	// sends and waits, and a line per chaos event. Nil: discarded.
	Progress      io.Writer
	ProgressEvery time.Duration
}

func (c *Config) defaults() {
	if len(c.Transports) == 0 {
		c.Transports = []string{"tcp", "quic"}
	}
	if c.N <= 0 {
		c.N = 10000
	}
	if c.Clients <= 0 {
		c.Clients = 8
	}
	if c.ReceiverDown <= 0 {
		c.ReceiverDown = 2 * time.Second
	}
	if c.DeliverTimeout <= 0 {
		c.DeliverTimeout = 3 * time.Minute
	}
	if c.StatesTimeout <= 0 {
		c.StatesTimeout = 30 * time.Second
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 30 * time.Second
	}
	if c.BoundIterations == 0 {
		c.BoundIterations = 2000
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.ProgressEvery <= 0 {
		c.ProgressEvery = 2 * time.Second
	}
}

// Chaos describes the chaos of a configuration, "none" without any.
func (c Config) Chaos() string {
	var parts []string
	if c.KillRelay > 0 {
		parts = append(parts, fmt.Sprintf("SIGKILL relay B %d×", c.KillRelay))
	}
	if c.StopReceiver {
		d := c.ReceiverDown
		if d <= 0 {
			d = 2 * time.Second
		}
		parts = append(parts, fmt.Sprintf("SIGTERM receiver C for %v", d))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Run measures the crypto bound, then runs the chain over each transport.
// Losses are not errors: they are in the Report (see RunReport.ZeroLoss).
// An error means the harness could not do its job (a node did not start,
// the context ended); the Report then holds the runs finished before.
// Every process Run started is gone when it returns.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg.defaults()
	var rep Report
	for _, t := range cfg.Transports {
		if t != "tcp" && t != "quic" {
			return rep, fmt.Errorf("transport %q: want tcp or quic", t)
		}
	}
	if cfg.Bin == "" {
		dir, err := os.MkdirTemp("", "qpc-chain-bin-")
		if err != nil {
			return rep, err
		}
		defer os.RemoveAll(dir)
		cfg.Bin = filepath.Join(dir, "qpc")
		fmt.Fprintf(cfg.Progress, "building %s\n", cfg.Bin)
		build := exec.CommandContext(ctx, "go", "build", "-o", cfg.Bin, "github.com/quicprochat/qpc/cmd/qpc")
		if out, err := build.CombinedOutput(); err != nil {
			return rep, fmt.Errorf("go build ./cmd/qpc: %v\n%s", err, out)
		}
	}
	if cfg.BoundIterations > 0 {
		b, err := MeasureBound(cfg.BoundIterations)
		if err != nil {
			return rep, fmt.Errorf("crypto bound: %w", err)
		}
		rep.Bound = &b
	}
	for _, t := range cfg.Transports {
		r, err := runChain(ctx, cfg, t)
		if err != nil { // an unfinished run has nothing to report
			return rep, fmt.Errorf("%s: %w", t, err)
		}
		r.Bound = rep.Bound
		rep.Runs = append(rep.Runs, r)
	}
	return rep, nil
}

// chain is one run's three nodes and shared state.
type chain struct {
	cfg        Config
	transport  string
	a, b, c    *node
	addrA      string
	addrC      string
	t0         time.Time // first send
	accepted   atomic.Int64
	milestones map[int64]chan struct{} // closed when accepted reaches the key
	events     []string
	eventsMu   sync.Mutex
	coll       *collector
}

func (ch *chain) event(format string, args ...any) {
	line := fmt.Sprintf("t+%5.2fs %s", time.Since(ch.t0).Seconds(), fmt.Sprintf(format, args...))
	ch.eventsMu.Lock()
	ch.events = append(ch.events, line)
	ch.eventsMu.Unlock()
	fmt.Fprintf(ch.cfg.Progress, "%s: %s\n", ch.transport, line)
}

func runChain(ctx context.Context, cfg Config, transport string) (rep RunReport, err error) {
	rep = RunReport{Transport: transport, Chaos: cfg.Chaos(), Requested: cfg.N, Clients: cfg.Clients, Batch: cfg.Batch}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	root := cfg.WorkDir
	temp := root == ""
	if temp {
		if root, err = os.MkdirTemp("", "qpc-chain-"+transport+"-"); err != nil {
			return rep, err
		}
	} else {
		root = filepath.Join(root, transport)
	}
	if temp {
		rep.Dir = root
	}
	var shutdownFailed atomic.Bool
	defer func() {
		clean := err == nil && rep.ZeroLoss() == nil && !shutdownFailed.Load()
		if temp && !cfg.Keep && (clean || ctx.Err() != nil) {
			os.RemoveAll(root)
			rep.Dir = ""
		}
	}()

	ports, err := freePorts(6, transport == "quic")
	if err != nil {
		return rep, err
	}
	uri := func(p int) string { return fmt.Sprintf("%s://127.0.0.1:%d", transport, p) }
	mk := func(name string, apiPort, listen int, peer string) (*node, error) {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		api := fmt.Sprintf("127.0.0.1:%d", apiPort)
		args := []string{"node", "--api", api, "--data-dir", filepath.Join(dir, "data"), "--listen", uri(listen)}
		if peer != "" {
			args = append(args, "--peer", peer)
		}
		args = append(args, cfg.NodeArgs...)
		return &node{name: name, bin: cfg.Bin, dir: dir, args: args, env: cfg.NodeEnv, api: newClient(api, 2*cfg.Clients+4)}, nil
	}
	ch := &chain{cfg: cfg, transport: transport, t0: time.Now()}
	if ch.c, err = mk("C", ports[2], ports[5], ""); err != nil {
		return rep, err
	}
	if ch.b, err = mk("B", ports[1], ports[4], uri(ports[5])); err != nil {
		return rep, err
	}
	if ch.a, err = mk("A", ports[0], ports[3], uri(ports[4])); err != nil {
		return rep, err
	}
	nodes := []*node{ch.a, ch.b, ch.c}
	defer func() {
		// A clean end stops the nodes as a user would; a failed or
		// cancelled one kills them.
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Close the harness's idle connections first: an HTTP
				// server's Shutdown waits for connections that never sent
				// a request (the client's spare dials) for 5 s.
				n.api.close()
				if err != nil || ctx.Err() != nil {
					n.kill()
				} else if serr := n.signal(syscall.SIGTERM, 10*time.Second); serr != nil {
					shutdownFailed.Store(true)
					ch.event("shutdown of %s: %v; its log ends: %s", n.name, serr, lastLine(n.logPath()))
				}
			}()
		}
		wg.Wait()
		ch.eventsMu.Lock()
		rep.Events = append([]string(nil), ch.events...)
		ch.eventsMu.Unlock()
		if err != nil && ctx.Err() == nil {
			for _, n := range nodes {
				err = fmt.Errorf("%w\n%s", err, n.logTail(15))
			}
		}
	}()

	// Start C, then B (dials C), then A (dials B).
	for _, n := range []*node{ch.c, ch.b, ch.a} {
		if err := n.start(ctx, cfg.ReadyTimeout); err != nil {
			return rep, err
		}
	}
	stA, err := ch.a.api.status(ctx)
	if err != nil {
		return rep, fmt.Errorf("status of A: %w", err)
	}
	stC, err := ch.c.api.status(ctx)
	if err != nil {
		return rep, fmt.Errorf("status of C: %w", err)
	}
	ch.addrA, ch.addrC = stA.Address, stC.Address
	if err := ch.waitRoute(ctx); err != nil {
		return rep, err
	}

	// The run: count CPU, start the inbox collector, chaos and senders.
	ch.milestones = map[int64]chan struct{}{}
	plan := chaosPlan(cfg)
	for _, a := range plan {
		if ch.milestones[a.at] == nil {
			ch.milestones[a.at] = make(chan struct{})
		}
	}
	for _, n := range nodes {
		n.startCPU()
	}
	ch.coll = newCollector(ch.c.api)
	go ch.coll.run(ctx)
	ch.t0 = time.Now()

	sendsDone := make(chan struct{})
	// B's and C's chaos each follow the sends on their own, so a kill of
	// B may fall while C is down.
	chaosErr := make(chan error, 2)
	for _, who := range []string{"kill-relay", "stop-receiver"} {
		go func() { chaosErr <- ch.chaos(ctx, plan, who, sendsDone) }()
	}
	progressDone, progressExited := make(chan struct{}), make(chan struct{})
	go func() { ch.progress(ctx, progressDone, sendsDone); close(progressExited) }()
	defer func() { close(progressDone); <-progressExited }()

	sres := ch.send(ctx)
	close(sendsDone)
	rep.Sent, rep.SendStatus, rep.Status429, rep.SendRetries = sres.accepted, sres.statuses, sres.n429, sres.retries
	rep.SendFailures, rep.SendError = sres.failures, sres.firstErr
	rep.SendWall = sres.wall
	if err := errors.Join(<-chaosErr, <-chaosErr); err != nil {
		return rep, err
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}

	// Wait for C to hold every accepted text.
	deadline := time.NewTimer(cfg.DeliverTimeout)
	defer deadline.Stop()
wait:
	for {
		if ch.coll.distinct() >= sres.accepted {
			break
		}
		select {
		case <-ch.coll.notify:
		case <-deadline.C:
			rep.TimedOut = true
			ch.event("gave up waiting after %v: delivered %d/%d", cfg.DeliverTimeout, ch.coll.distinct(), sres.accepted)
			break wait
		case <-ctx.Done():
			return rep, ctx.Err()
		}
	}
	end := time.Now()
	for i, n := range nodes {
		rep.CPU[i] = NodeCPU{Node: n.name, Seconds: n.stopCPU(), Starts: n.starts}
	}
	ch.coll.stop()

	// Exactly once: C's whole inbox, read again from the start.
	entries, err := ch.c.api.inboxAll(ctx)
	if err != nil {
		return rep, fmt.Errorf("reading C's inbox: %w", err)
	}
	rep.analyze(entries, sres.texts, ch.addrA)
	last := end
	if !rep.TimedOut {
		if at := latest(entries); !at.IsZero() && at.After(ch.t0) && at.Before(end) {
			last = at
		}
	}
	rep.Wall = last.Sub(ch.t0)
	if rep.Wall > 0 {
		rep.MsgsPerSec = float64(rep.Delivered) / rep.Wall.Seconds()
	}
	for i := range rep.CPU {
		if rep.Delivered > 0 {
			rep.CPU[i].PerMsg = time.Duration(rep.CPU[i].Seconds / float64(rep.Delivered) * float64(time.Second))
		}
	}

	// Every message delivered, as A sees it.
	ch.checkStates(ctx, &rep, sres.ids)

	for _, n := range nodes {
		if m, err := n.api.metrics(ctx); err == nil {
			if rep.Counters == nil {
				rep.Counters = map[string][]string{}
			}
			rep.Counters[n.name] = notableCounters(m)
		}
	}
	return rep, nil
}

// waitRoute waits until A has learned a route to C (through B), so that
// the first send has somewhere to go.
func (ch *chain) waitRoute(ctx context.Context) error {
	deadline := time.Now().Add(ch.cfg.ReadyTimeout)
	for {
		ok, err := ch.a.api.routesTo(ctx, ch.addrC)
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("A has no route to C %s within %v (last error: %v)", ch.addrC, ch.cfg.ReadyTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling another process
		}
	}
}

// progress prints a line every ProgressEvery until done: how many texts
// A has taken and C holds, so that a long run shows it is alive.
func (ch *chain) progress(ctx context.Context, done, sendsDone chan struct{}) {
	tick := time.NewTicker(ch.cfg.ProgressEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		phase := "sending"
		select {
		case <-sendsDone:
			phase = "all sent, waiting"
		default:
		}
		fmt.Fprintf(ch.cfg.Progress, "%s: t+%5.2fs %s: sent %d/%d, delivered %d\n", ch.transport,
			time.Since(ch.t0).Seconds(), phase, ch.accepted.Load(), ch.cfg.N, ch.coll.distinct())
	}
}

// sendResult is what the senders did.
type sendResult struct {
	accepted, n429, retries, failures int
	statuses                          map[string]int
	firstErr                          string
	ids                               []string // of accepted messages
	texts                             []string // of accepted messages
	wall                              time.Duration
}

// send posts texts m-000000 … from A to C with cfg.Clients clients.
func (ch *chain) send(ctx context.Context) sendResult {
	n := ch.cfg.N
	ids, texts := make([]string, n), make([]string, n)
	statuses := make([]string, n)
	var next, n429, retries atomic.Int64
	var mu sync.Mutex
	var failures int
	var firstErr string
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if failures == 0 {
			firstErr = err.Error()
		}
		failures++
	}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < ch.cfg.Clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ch.cfg.Batch > 1 {
				for {
					lo := int(next.Add(int64(ch.cfg.Batch)) - int64(ch.cfg.Batch))
					if lo >= n || ctx.Err() != nil {
						return
					}
					hi := min(lo+ch.cfg.Batch, n)
					batch := make([]string, 0, hi-lo)
					for i := lo; i < hi; i++ {
						batch = append(batch, fmt.Sprintf("m-%06d", i))
					}
					res, err := ch.sendMany(ctx, batch, &n429, &retries)
					if err != nil {
						if ctx.Err() == nil {
							fail(fmt.Errorf("%s…: %w", batch[0], err))
						}
						continue
					}
					for k, r := range res {
						i := lo + k
						ids[i], texts[i], statuses[i] = r.ID, batch[k], r.Status
						if m, ok := ch.milestones[ch.accepted.Add(1)]; ok {
							close(m)
						}
					}
				}
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				text := fmt.Sprintf("m-%06d", i)
				res, err := ch.sendOne(ctx, text, &n429, &retries)
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("%s: %w", text, err))
					}
					continue
				}
				ids[i], texts[i], statuses[i] = res.ID, text, res.Status
				if m, ok := ch.milestones[ch.accepted.Add(1)]; ok {
					close(m) // a chaos step waits for this many
				}
			}
		}()
	}
	wg.Wait()
	r := sendResult{n429: int(n429.Load()), retries: int(retries.Load()), failures: failures, firstErr: firstErr,
		statuses: map[string]int{}, wall: time.Since(start)}
	for i := range ids {
		if ids[i] != "" {
			r.ids, r.texts = append(r.ids, ids[i]), append(r.texts, texts[i])
			r.statuses[statuses[i]]++
		}
	}
	r.accepted = len(r.ids)
	return r
}

// sendRetryFor bounds how long one text is retried after answers other
// than 429 that say it was not taken (no route yet while B restarts).
const sendRetryFor = 60 * time.Second

// sendOne posts one text until A takes it: after a 429 it waits
// Retry-After and sends the same text again. Answers that may mean the
// text was taken (a 500, a timeout) are not retried: that would risk a
// duplicate the harness itself caused.
func (ch *chain) sendOne(ctx context.Context, text string, n429, retries *atomic.Int64) (sendResponse, error) {
	first := time.Now()
	for {
		res, err := ch.a.api.send(ctx, ch.addrC, text)
		if err == nil {
			return res, nil
		}
		var wait time.Duration
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.Status == 429:
			n429.Add(1)
			wait = ae.RetryAfter
			if wait <= 0 {
				wait = 100 * time.Millisecond
			}
			wait = min(wait, 30*time.Second)
		case notTaken(err) && time.Since(first) < sendRetryFor:
			retries.Add(1)
			wait = 100 * time.Millisecond
		default:
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// sendMany posts texts in the batch form until A took every one: the
// ones refused for a full outbox (or an unknown destination while B
// restarts) are sent again, the others kept.
func (ch *chain) sendMany(ctx context.Context, texts []string, n429, retries *atomic.Int64) ([]sendResponse, error) {
	out := make([]sendResponse, len(texts))
	todo := make([]int, len(texts))
	for i := range todo {
		todo[i] = i
	}
	first := time.Now()
	for len(todo) > 0 {
		batch := make([]string, len(todo))
		for k, i := range todo {
			batch[k] = texts[i]
		}
		res, err := ch.a.api.sendBatch(ctx, ch.addrC, batch)
		var again []int
		wait := 100 * time.Millisecond
		switch {
		case err == nil:
			for k, r := range res {
				switch {
				case r.Error == nil:
					out[todo[k]] = sendResponse{ID: r.ID, Status: r.Status}
				case r.Error.Code == "outbox_full":
					n429.Add(1)
					again, wait = append(again, todo[k]), time.Second
				case strings.Contains(r.Error.Message, "unknown destination") && time.Since(first) < sendRetryFor:
					retries.Add(1)
					again = append(again, todo[k])
				default:
					return nil, fmt.Errorf("%s: %s (%s)", batch[k], r.Error.Message, r.Error.Code)
				}
			}
		case notTaken(err) && time.Since(first) < sendRetryFor:
			retries.Add(1)
			again = todo
		default:
			return nil, err
		}
		if todo = again; len(todo) == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
	return out, nil
}

// notTaken reports whether a failed send certainly did not queue the text:
// the connection was refused, the node is not ready (503), or it knows no
// key for C yet (400 unknown destination).
func notTaken(err error) bool {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status == 503 || (ae.Status == 400 && strings.Contains(ae.Message, "unknown destination"))
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// action is one chaos step: when at texts have been accepted.
type action struct {
	at   int64
	kind string // kill-relay or stop-receiver
}

func chaosPlan(cfg Config) []action {
	var plan []action
	at := func(frac float64) int64 { return max(1, int64(frac*float64(cfg.N))) }
	for i := 1; i <= cfg.KillRelay; i++ {
		plan = append(plan, action{at(float64(i) / float64(cfg.KillRelay+1)), "kill-relay"})
	}
	if cfg.StopReceiver {
		plan = append(plan, action{at(0.5), "stop-receiver"})
	}
	sort.SliceStable(plan, func(i, j int) bool { return plan[i].at < plan[j].at })
	return plan
}

// chaos carries out the steps of the plan of one kind, each when its
// number of texts has been accepted (or, if sending ended short of it, at
// once). Sending goes on throughout.
func (ch *chain) chaos(ctx context.Context, plan []action, kind string, sendsDone chan struct{}) error {
	for _, a := range plan {
		if a.kind != kind {
			continue
		}
		select {
		case <-ch.milestones[a.at]:
		case <-sendsDone:
		case <-ctx.Done():
			return ctx.Err()
		}
		switch a.kind {
		case "kill-relay":
			ch.event("SIGKILL B (sent %d/%d)", ch.accepted.Load(), ch.cfg.N)
			ch.b.kill()
			if err := ch.b.start(ctx, ch.cfg.ReadyTimeout); err != nil {
				return fmt.Errorf("restarting B: %w", err)
			}
			ch.event("B restarted and ready")
		case "stop-receiver":
			ch.event("SIGTERM C (sent %d/%d)", ch.accepted.Load(), ch.cfg.N)
			if err := ch.c.signal(syscall.SIGTERM, 15*time.Second); err != nil {
				ch.event("C did not exit cleanly: %v", err)
			} else {
				ch.event("C exited 0; restarting in %v", ch.cfg.ReceiverDown)
			}
			select {
			case <-time.After(ch.cfg.ReceiverDown): // the chosen downtime, not a wait for a condition
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := ch.c.start(ctx, ch.cfg.ReadyTimeout); err != nil {
				return fmt.Errorf("restarting C: %w", err)
			}
			ch.coll.reset() // the inbox is C's database: read it again from the start
			ch.event("C restarted and ready")
		}
	}
	return nil
}

// checkStates asks A for the state of every accepted message, concurrently,
// and again for those not yet delivered until all are or StatesTimeout
// passes.
func (ch *chain) checkStates(ctx context.Context, rep *RunReport, ids []string) {
	rep.States = map[string]int{}
	if len(ids) == 0 {
		return
	}
	states := make(map[string]messageState, len(ids))
	pending := ids
	deadline := time.Now().Add(ch.cfg.StatesTimeout)
	var errs map[string]error
	for {
		got, gotErrs := ch.queryStates(ctx, pending)
		errs = gotErrs
		for id, m := range got {
			states[id] = m
		}
		if len(got) == 0 && len(errs) > 0 {
			for _, e := range errs {
				if strings.Contains(e.Error(), "no such endpoint") {
					rep.StatesNote = "A does not serve GET /v1/messages/{id}"
					return
				}
				break
			}
		}
		var again []string
		for _, id := range pending {
			if m, ok := states[id]; !ok || (m.State != "delivered" && m.State != "failed") {
				again = append(again, id)
			}
		}
		pending = again
		if len(pending) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond): // polling another process
		}
	}
	rep.StatesChecked = len(ids)
	var attempts, withAttempts int
	for _, id := range ids {
		m, ok := states[id]
		switch {
		case ok:
			rep.States[m.State]++
			attempts += m.Attempts
			withAttempts++
			rep.AttemptsMax = max(rep.AttemptsMax, m.Attempts)
			if m.State != "delivered" && rep.StateSample == "" {
				rep.StateSample = fmt.Sprintf("%s: state %s, attempts %d, reason %q", id, m.State, m.Attempts, m.Reason)
			}
		default:
			rep.States["error"]++
			if rep.StateSample == "" {
				rep.StateSample = fmt.Sprintf("%s: %v", id, errs[id])
			}
		}
	}
	if withAttempts > 0 {
		rep.AttemptsMean = float64(attempts) / float64(withAttempts)
	}
}

func (ch *chain) queryStates(ctx context.Context, ids []string) (map[string]messageState, map[string]error) {
	var mu sync.Mutex
	got, errs := map[string]messageState{}, map[string]error{}
	work := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				m, err := ch.a.api.message(ctx, id)
				mu.Lock()
				if err != nil {
					errs[id] = err
				} else {
					got[id] = m
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return got, errs
}

func latest(entries []inboxEntry) time.Time {
	var t time.Time
	for _, e := range entries {
		if e.At.After(t) {
			t = e.At
		}
	}
	return t
}

var notable = regexp.MustCompile(`^qpc_[a-z_]*(drop|shed|refus|retrans|outbox|expired|fail|dup|replay|stor|429|full)[a-z_]*`)

// notableCounters are the non-zero series of /metrics whose names speak of
// loss, retries or storage: what to look at when a run loses messages.
func notableCounters(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' || !notable.MatchString(line) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err != nil || v == 0 {
			continue
		}
		out = append(out, line)
	}
	return out
}
