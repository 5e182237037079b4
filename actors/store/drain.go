package store

// drains tracks the destinations whose held frames are being handed back
// to the router, batch by batch, so that a destination has at most one
// pass running. It is plain state owned by the actor.
//
// A pass walks the destination's frames in key order until the end
// (PeekAfter's next is nil). Frames stored while it runs queue behind the
// keys it already handed out, so the pass sends them too. A RouteUp that
// arrives during a pass does not start a second one in parallel; it asks
// for one more pass from the start once the current one ends, because the
// route may have changed under the first and what it handed over may not
// have gone out. Many RouteUps during one pass make one more pass, not
// many.
type drains struct {
	running map[[16]byte]*drainPass
}

type drainPass struct {
	again bool // a RouteUp came during this pass: run another from the start
}

// start is called on a RouteUp for dest. It reports whether a pass should
// begin now; if one is running already it marks that another follows.
func (d *drains) start(dest [16]byte) bool {
	if p := d.running[dest]; p != nil {
		p.again = true
		return false
	}
	if d.running == nil {
		d.running = make(map[[16]byte]*drainPass)
	}
	d.running[dest] = &drainPass{}
	return true
}

// resume is called when a continuation for dest arrives. A pass is
// registered if none is (the actor restarted between two batches and
// lost its state, while the continuation stayed in its mailbox).
func (d *drains) resume(dest [16]byte) {
	if d.running[dest] == nil {
		d.start(dest)
	}
}

// next is called after a batch of dest's pass was handed back, with the
// cursor PeekAfter returned. It says where the following batch starts
// (nil: from the oldest frame) and whether there is one; when there is
// not, the pass is over.
func (d *drains) next(dest [16]byte, cursor []byte) (after []byte, more bool) {
	p := d.running[dest]
	switch {
	case p == nil:
		return nil, false
	case cursor != nil:
		return cursor, true
	case p.again:
		p.again = false
		return nil, true
	}
	delete(d.running, dest)
	return nil, false
}

// stop ends dest's pass (nothing is held for it, or reading failed).
func (d *drains) stop(dest [16]byte) { delete(d.running, dest) }
