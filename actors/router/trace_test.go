package router

import (
	"errors"
	"testing"
	"time"
)

func TestTracerWalksThePath(t *testing.T) {
	tr := &Tracer{MaxHops: 8}
	now := time.Unix(1_800_000_000, 0)
	probe, to, b := [16]byte{1}, [16]byte{0xC}, [16]byte{0xB}
	tr.Start(probe, to, "owner")
	tr.Sent(probe, now)
	got, done := tr.Answer(probe, b, now.Add(3*time.Millisecond))
	if got == nil || done || got.Hop != 2 || got.Result.Hops[0].RTT != 3*time.Millisecond || got.Owner != "owner" {
		t.Fatalf("first hop: %+v %v", got, done)
	}
	tr.Sent(probe, now.Add(4*time.Millisecond))
	got, done = tr.Answer(probe, to, now.Add(9*time.Millisecond))
	if !done || !got.Result.Reached || len(got.Result.Hops) != 2 || got.Result.Hops[1].Hop != 2 || got.Result.Hops[1].RTT != 5*time.Millisecond {
		t.Fatalf("destination: %+v %v", got, done)
	}
	if tr.Len() != 0 {
		t.Fatal("finished trace kept")
	}
	if got, _ := tr.Answer(probe, to, now); got != nil {
		t.Fatal("a late answer was taken")
	}
}

func TestTracerStopsAtMaxHopsAndTimesOut(t *testing.T) {
	tr := &Tracer{MaxHops: 2}
	now := time.Unix(1_800_000_000, 0)
	p, to := [16]byte{1}, [16]byte{0xC}
	tr.Start(p, to, nil)
	tr.Answer(p, [16]byte{1}, now)
	got, done := tr.Answer(p, [16]byte{2}, now)
	if !done || got.Result.Reached || len(got.Result.Hops) != 2 {
		t.Fatalf("max hops: %+v %v", got, done)
	}
	q := [16]byte{2}
	tr.Start(q, to, nil)
	if got := tr.End(q, ErrTraceTimeout); got == nil || !errors.Is(got.Result.Err, ErrTraceTimeout) || tr.Len() != 0 {
		t.Fatalf("timeout: %+v", got)
	}
	if tr.End(q, ErrTraceTimeout) != nil {
		t.Fatal("ended twice")
	}
}
