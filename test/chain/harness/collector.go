package harness

import (
	"context"
	"strings"
	"sync"
	"time"
)

// collector follows C's inbox while the run goes on, to show progress and
// to know when every text has arrived. It is not the judge of exactly-once:
// that is a fresh read of the whole inbox at the end (RunReport.analyze).
type collector struct {
	api    *client
	notify chan struct{} // gets a token whenever more texts arrived

	mu    sync.Mutex
	gen   int            // bumped by reset
	texts map[string]int // text → times seen
	done  chan struct{}
	once  sync.Once
}

func newCollector(api *client) *collector {
	return &collector{api: api, notify: make(chan struct{}, 1), texts: map[string]int{}, done: make(chan struct{})}
}

// reset forgets what was read and reads again from the start (after C
// restarted: its inbox is whatever its database kept).
func (c *collector) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.texts = map[string]int{}
}

func (c *collector) stop() { c.once.Do(func() { close(c.done) }) }

// distinct is how many different harness texts C holds.
func (c *collector) distinct() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.texts)
}

func (c *collector) run(ctx context.Context) {
	var after uint64
	gen := -1
	for {
		c.mu.Lock()
		if gen != c.gen {
			gen, after = c.gen, 0
		}
		c.mu.Unlock()
		page, err := c.api.inbox(ctx, after, time.Second)
		pause := time.Duration(0)
		switch {
		case err != nil:
			pause = 100 * time.Millisecond // C is down or restarting
		default:
			c.mu.Lock()
			if gen == c.gen { // not reset while the request was out
				added := false
				for _, m := range page.Messages {
					if strings.HasPrefix(m.Text, "m-") {
						c.texts[m.Text]++
						added = true
					}
				}
				if page.Last > after {
					after = page.Last
				}
				if added {
					select {
					case c.notify <- struct{}{}:
					default:
					}
				}
			}
			c.mu.Unlock()
			if len(page.Messages) < 1000 {
				// A short page: pace the reads so that following the inbox
				// costs C little of the CPU the run measures.
				pause = 100 * time.Millisecond
			}
		}
		if pause > 0 {
			select {
			case <-ctx.Done():
				return
			case <-c.done:
				return
			case <-time.After(pause):
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.done:
			return
		default:
		}
	}
}
