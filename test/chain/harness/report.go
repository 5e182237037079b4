package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Targets of the benchmark.
const (
	// TargetBoundRatio: delivered msgs/s over TCP at least this share of
	// the crypto bound.
	TargetBoundRatio = 0.6
	// TargetReceiverRatio: C's CPU per delivered message at most this
	// many times the receiver's crypto cost (c).
	TargetReceiverRatio = 2.0
)

// Report is what Run found: the crypto bound and one RunReport per
// transport.
type Report struct {
	Bound *Bound // nil when not measured
	Runs  []RunReport
}

// ZeroLoss is nil when every run delivered every text exactly once and A
// reported every message delivered.
func (r Report) ZeroLoss() error {
	var errs []error
	for _, run := range r.Runs {
		if err := run.ZeroLoss(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", run.Transport, err))
		}
	}
	return errors.Join(errs...)
}

// RunReport is one run of the chain over one transport.
type RunReport struct {
	Transport string
	Chaos     string
	Requested int // texts the harness meant to send
	Clients   int
	Batch     int // texts per request (1: one per request)

	Sent         int            // texts A accepted (200)
	SendStatus   map[string]int // the status of each 200: queued, forwarded, stored
	Status429    int            // 429 answers (each followed by a retry of the same text)
	SendRetries  int            // other retried answers that mean "not taken" (503, unknown destination)
	SendFailures int            // texts given up on
	SendError    string         // the first failure
	SendWall     time.Duration  // first send to last answer

	InboxEntries int      // entries in C's inbox at the end
	Delivered    int      // sent texts found in C's inbox (each counted once)
	Duplicates   int      // extra copies of sent texts
	Missing      int      // sent texts not in C's inbox
	Unexpected   int      // entries that are not a sent text from A
	Samples      []string // a few of the missing, duplicated and unexpected
	TimedOut     bool     // DeliverTimeout passed before C held every text

	StatesChecked int            // ids asked with GET /v1/messages/{id}
	States        map[string]int // state → count ("error": could not ask)
	StatesNote    string         // why states were not checked
	StateSample   string         // one message that is not delivered
	AttemptsMean  float64
	AttemptsMax   int

	Wall       time.Duration // first send to last delivery
	MsgsPerSec float64       // Delivered / Wall
	CPU        [3]NodeCPU    // A, B, C
	Bound      *Bound

	Events   []string            // chaos and other things that happened, timed from the first send
	Counters map[string][]string // node → non-zero loss-related metrics at the end
	Dir      string              // the run's directory, if kept
}

// NodeCPU is the CPU one node's processes used during the run.
type NodeCPU struct {
	Node    string
	Seconds float64       // utime+stime, all its processes
	PerMsg  time.Duration // Seconds per delivered message
	Starts  int           // processes started (restarts + 1)
}

// analyze checks C's inbox against the accepted texts: each exactly once,
// from A, and nothing else.
func (r *RunReport) analyze(entries []inboxEntry, sent []string, from string) {
	want := make(map[string]bool, len(sent))
	for _, t := range sent {
		want[t] = true
	}
	count := make(map[string]int, len(entries))
	var missing, dups, unexpected []string
	for _, e := range entries {
		if !want[e.Text] || e.From != from {
			r.Unexpected++
			unexpected = append(unexpected, fmt.Sprintf("%q from %s", truncate(e.Text, 40), e.From))
			continue
		}
		count[e.Text]++
	}
	for _, t := range sent {
		switch c := count[t]; {
		case c == 0:
			r.Missing++
			missing = append(missing, t)
		case c > 1:
			r.Duplicates += c - 1
			dups = append(dups, fmt.Sprintf("%s×%d", t, c))
		}
		if count[t] > 0 {
			r.Delivered++
		}
	}
	r.InboxEntries = len(entries)
	sample := func(name string, s []string) {
		if len(s) == 0 {
			return
		}
		if len(s) > 8 {
			s = append(s[:8:8], fmt.Sprintf("… (%d in all)", len(s)))
		}
		r.Samples = append(r.Samples, name+": "+strings.Join(s, ", "))
	}
	sample("missing", missing)
	sample("duplicated", dups)
	sample("unexpected", unexpected)
}

// ZeroLoss is nil when every text was sent, C holds each exactly once and
// nothing else, and A reports each delivered.
func (r RunReport) ZeroLoss() error {
	var problems []string
	if r.Sent != r.Requested {
		problems = append(problems, fmt.Sprintf("A accepted %d of %d texts (%d failed: %s)", r.Sent, r.Requested, r.SendFailures, r.SendError))
	}
	if r.Missing > 0 || r.Delivered != r.Sent {
		problems = append(problems, fmt.Sprintf("%d of %d sent texts missing at C", r.Missing, r.Sent))
	}
	if r.Duplicates > 0 {
		problems = append(problems, fmt.Sprintf("%d duplicates at C", r.Duplicates))
	}
	if r.Unexpected > 0 {
		problems = append(problems, fmt.Sprintf("%d unexpected entries at C", r.Unexpected))
	}
	switch {
	case r.StatesNote != "":
		problems = append(problems, "states not checked: "+r.StatesNote)
	case r.States["delivered"] != r.Sent || r.StatesChecked != r.Sent:
		problems = append(problems, fmt.Sprintf("A reports %d of %d delivered (%s; e.g. %s)", r.States["delivered"], r.Sent, countList(r.States), r.StateSample))
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New(strings.Join(problems, "; "))
}

// BoundRatio is delivered msgs/s over the crypto bound (0 if unknown).
func (r RunReport) BoundRatio() float64 {
	if r.Bound == nil || r.Bound.MsgsPerSec == 0 {
		return 0
	}
	return r.MsgsPerSec / r.Bound.MsgsPerSec
}

// ReceiverRatio is C's CPU per delivered message over (c) (0 if unknown).
func (r RunReport) ReceiverRatio() float64 {
	if r.Bound == nil || r.Bound.Receiver == 0 || r.CPU[2].PerMsg == 0 {
		return 0
	}
	return float64(r.CPU[2].PerMsg) / float64(r.Bound.Receiver)
}

// Verdict is one target's outcome: PASS, FAIL (correctness), MISS
// (performance) or n/a.
type Verdict struct {
	Target, Outcome, Detail string
}

// Verdicts of the run: zero loss always; the performance targets only on
// a run without chaos (downtime is not throughput).
func (r RunReport) Verdicts() []Verdict {
	v := []Verdict{{Target: "zero loss, exactly once, all delivered"}}
	if err := r.ZeroLoss(); err != nil {
		v[0].Outcome, v[0].Detail = "FAIL", err.Error()
	} else {
		v[0].Outcome, v[0].Detail = "PASS", fmt.Sprintf("%d/%d exactly once at C, %d delivered per A", r.Delivered, r.Requested, r.States["delivered"])
	}
	perf := func(target string, applies bool, ok bool, detail string) {
		out := Verdict{Target: target, Detail: detail}
		switch {
		case r.Chaos != "none":
			out.Outcome, out.Detail = "n/a", "chaos run: downtime and restarts are in the numbers"
		case !applies:
			out.Outcome = "n/a"
		case r.Bound == nil:
			out.Outcome, out.Detail = "n/a", "crypto bound not measured"
		case ok:
			out.Outcome = "PASS"
		default:
			out.Outcome = "MISS"
		}
		v = append(v, out)
	}
	br, rr := r.BoundRatio(), r.ReceiverRatio()
	perf(fmt.Sprintf("throughput ≥ %.1f × crypto bound (tcp)", TargetBoundRatio), r.Transport == "tcp", br >= TargetBoundRatio,
		fmt.Sprintf("%.2f (%.0f of %.0f msgs/s)", br, r.MsgsPerSec, boundRate(r.Bound)))
	perf(fmt.Sprintf("receiver CPU/msg ≤ %.0f × crypto (c)", TargetReceiverRatio), true, rr > 0 && rr <= TargetReceiverRatio,
		fmt.Sprintf("%.2f (%s per message at C, (c) %s)", rr, us(r.CPU[2].PerMsg), us(boundRecv(r.Bound))))
	return v
}

func boundRate(b *Bound) float64 {
	if b == nil {
		return 0
	}
	return b.MsgsPerSec
}

func boundRecv(b *Bound) time.Duration {
	if b == nil {
		return 0
	}
	return b.Receiver
}

// Print writes the report for people.
func (r Report) Print(w io.Writer) {
	if b := r.Bound; b != nil {
		fmt.Fprintf(w, "crypto bound (in-process, %d iterations each, best of %d, %d CPUs): (a) sender %s, (b) relay %s, (c) receiver %s per message → %.0f msgs/s\n",
			b.Iterations, boundRounds, b.NumCPU, us(b.Sender), us(b.Relay), us(b.Receiver), b.MsgsPerSec)
		fmt.Fprintf(w, "durability  4 KiB write + fsync in %s: median %s; an answer waits for its message to be durable, so k clients of one text per request get at most k messages per sync\n",
			os.TempDir(), us(b.Sync))
	}
	for _, run := range r.Runs {
		run.Print(w)
	}
}

// Print writes one run for people.
func (r RunReport) Print(w io.Writer) {
	per := ""
	if r.Batch > 1 {
		per = fmt.Sprintf(" × %d texts per request", r.Batch)
	}
	fmt.Fprintf(w, "\n== chain A — B — C over %s: %d texts, %d clients%s, chaos: %s\n", r.Transport, r.Requested, r.Clients, per, r.Chaos)
	fmt.Fprintf(w, "sent        %d accepted by A (%s) in %.2fs; 429s %d; other retries %d; failed %d\n",
		r.Sent, countList(r.SendStatus), r.SendWall.Seconds(), r.Status429, r.SendRetries, r.SendFailures)
	if r.SendError != "" {
		fmt.Fprintf(w, "            first failure: %s\n", r.SendError)
	}
	timedOut := ""
	if r.TimedOut {
		timedOut = " (gave up waiting)"
	}
	fmt.Fprintf(w, "delivered   %d to C%s; inbox entries %d; duplicates %d; missing %d; unexpected %d\n",
		r.Delivered, timedOut, r.InboxEntries, r.Duplicates, r.Missing, r.Unexpected)
	for _, s := range r.Samples {
		fmt.Fprintf(w, "            %s\n", s)
	}
	if r.StatesNote != "" {
		fmt.Fprintf(w, "states      not checked: %s\n", r.StatesNote)
	} else {
		fmt.Fprintf(w, "states      %d ids asked at A: %s; attempts mean %.2f, max %d\n", r.StatesChecked, countList(r.States), r.AttemptsMean, r.AttemptsMax)
		if r.StateSample != "" {
			fmt.Fprintf(w, "            e.g. %s\n", r.StateSample)
		}
	}
	fmt.Fprintf(w, "wall        %.3fs first send → last delivery; %.0f delivered msgs/s\n", r.Wall.Seconds(), r.MsgsPerSec)
	fmt.Fprintf(w, "cpu        ")
	for _, c := range r.CPU {
		starts := ""
		if c.Starts > 1 {
			starts = fmt.Sprintf(", %d processes", c.Starts)
		}
		fmt.Fprintf(w, " %s %.2fs (%s/msg%s) ", c.Node, c.Seconds, us(c.PerMsg), starts)
	}
	fmt.Fprintln(w)
	if r.Bound != nil {
		fmt.Fprintf(w, "vs bound    throughput %.2f × bound (%.0f msgs/s); receiver CPU/msg %.2f × (c)\n", r.BoundRatio(), r.Bound.MsgsPerSec, r.ReceiverRatio())
		if d := r.Bound.DurableMsgsPerSec(r.Clients); r.Batch <= 1 && d > 0 {
			fmt.Fprintf(w, "            durability bound for %d clients of one text per request: %.0f msgs/s (%d per %s sync); throughput %.2f × that\n",
				r.Clients, d, r.Clients, us(r.Bound.Sync), r.MsgsPerSec/d)
		}
	}
	for _, e := range r.Events {
		fmt.Fprintf(w, "event       %s\n", e)
	}
	for _, name := range []string{"A", "B", "C"} {
		if cs := r.Counters[name]; len(cs) > 0 {
			fmt.Fprintf(w, "counters %s  %s\n", name, strings.Join(cs, "\n            "))
		}
	}
	if r.Dir != "" {
		fmt.Fprintf(w, "kept        %s (nodes' data and logs)\n", r.Dir)
	}
	for _, v := range r.Verdicts() {
		fmt.Fprintf(w, "verdict %-4s %s [%s]: %s\n", v.Outcome, v.Target, r.Transport, v.Detail)
	}
}

func countList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := k
		if name == "" {
			name = `""`
		}
		parts[i] = fmt.Sprintf("%s %d", name, m[k])
	}
	return strings.Join(parts, ", ")
}

func us(d time.Duration) string {
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}
