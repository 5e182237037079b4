package verify

import (
	"runtime"
	"sync"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// PoolConfig wires a Pool.
type PoolConfig struct {
	Workers int // default runtime.GOMAXPROCS(0)
	// Queue bounds the frames without link credit (from a radio, from the
	// Go API) waiting for a worker (default 8192). Frames with credit are
	// never refused: their links' credit bounds them.
	Queue int
	Dir   *Directory
	Self  [16]byte
	Seal  *crypto.SealingKey
	// Out receives every verified envelope (*messages.VerifiedEnvelope) and
	// every frame whose key the snapshot lacks (*messages.InboundFrame): the
	// router. It must not block for long.
	Out func(any)
	// Drop counts a frame dropped at the edge, by reason; the pool has
	// released its credit already.
	Drop func(reason string)
}

// Pool runs Check on worker goroutines, oldest frame first.
type Pool struct {
	cfg PoolConfig
	wg  sync.WaitGroup

	mu       sync.Mutex
	ready    sync.Cond
	q        []*messages.InboundFrame // FIFO; head at q[0]
	uncredit int                      // frames in q without credit
	shut     bool
}

// NewPool starts the workers.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8192
	}
	p := &Pool{cfg: cfg}
	p.ready.L = &p.mu
	for range cfg.Workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

// next waits for a frame; nil once the pool is closed and drained.
func (p *Pool) next() *messages.InboundFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.q) == 0 && !p.shut {
		p.ready.Wait()
	}
	if len(p.q) == 0 {
		return nil
	}
	f := p.q[0]
	p.q[0] = nil
	p.q = p.q[1:]
	if f.Release == nil {
		p.uncredit--
	}
	return f
}

func (p *Pool) work() {
	defer p.wg.Done()
	for f := p.next(); f != nil; f = p.next() {
		v, reason := Check(f, p.cfg.Dir, p.cfg.Self, p.cfg.Seal)
		switch {
		case v != nil:
			p.cfg.Out(v)
		case reason == "":
			p.cfg.Out(f)
		default:
			f.Done()
			p.cfg.Drop(reason)
		}
	}
}

// Submit hands a frame to the workers without blocking. A frame with
// link credit is always taken (its link is not read further until it is
// done, so a peer cannot queue more than its credit); one without is
// dropped, counted as overload, when Queue such frames wait already. A
// closed pool drops everything (releasing credit). It reports whether the
// frame was taken.
func (p *Pool) Submit(f *messages.InboundFrame) bool {
	p.mu.Lock()
	credited := f.Release != nil
	if p.shut || (!credited && p.uncredit >= p.cfg.Queue) {
		p.mu.Unlock()
		f.Done()
		p.cfg.Drop(DropOverload)
		return false
	}
	p.q = append(p.q, f)
	if !credited {
		p.uncredit++
	}
	p.mu.Unlock()
	p.ready.Signal()
	return true
}

// Close stops the workers after the frames queued; it waits for them.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.shut {
		p.mu.Unlock()
		p.wg.Wait()
		return
	}
	p.shut = true
	p.mu.Unlock()
	p.ready.Broadcast()
	p.wg.Wait()
}
