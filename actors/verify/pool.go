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
	Queue   int // frames waiting for a worker at most (default 8192)
	Dir     *Directory
	Self    [16]byte
	Seal    *crypto.SealingKey
	// Out receives every verified envelope (*messages.VerifiedEnvelope) and
	// every frame whose key the snapshot lacks (*messages.InboundFrame): the
	// router. It must not block for long.
	Out func(any)
	// Drop counts a frame dropped at the edge, by reason; the pool has
	// released its credit already.
	Drop func(reason string)
}

// Pool runs Check on worker goroutines.
type Pool struct {
	cfg  PoolConfig
	in   chan *messages.InboundFrame
	wg   sync.WaitGroup
	once sync.Once
	mu   sync.RWMutex // Submit against Close
	shut bool
}

// NewPool starts the workers.
func NewPool(cfg PoolConfig) *Pool {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 8192
	}
	p := &Pool{cfg: cfg, in: make(chan *messages.InboundFrame, cfg.Queue)}
	for range cfg.Workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *Pool) work() {
	defer p.wg.Done()
	for f := range p.in {
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

// Submit hands a frame to the workers without blocking. A full queue (or
// a closed pool) drops the frame, counted as overload, and releases its
// credit; it reports whether the frame was taken.
func (p *Pool) Submit(f *messages.InboundFrame) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if !p.shut {
		select {
		case p.in <- f:
			return true
		default:
		}
	}
	f.Done()
	p.cfg.Drop(DropOverload)
	return false
}

// Close stops the workers after the frames queued; it waits for them.
func (p *Pool) Close() {
	p.once.Do(func() {
		p.mu.Lock()
		p.shut = true
		close(p.in)
		p.mu.Unlock()
		p.wg.Wait()
	})
}
