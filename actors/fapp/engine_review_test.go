package fapp

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/fapp"
)

// failingState refuses to write while fail is set.
type failingState struct {
	fail     bool
	practice []byte
}

var errDisk = errors.New("disk full")

func (s *failingState) SavePractice(b []byte) error {
	if s.fail {
		return errDisk
	}
	s.practice = append([]byte(nil), b...)
	return nil
}

func (s *failingState) SaveReservation(*fapp.Reservation) error {
	if s.fail {
		return errDisk
	}
	return nil
}

// TestEnginePublishReportsAStateNotWritten: a Publish, Confirm or
// renewal whose state cannot be written returns the error (Publish,
// Answer) and leaves memory as it was on disk: same sequence, same set,
// nothing sent.
func TestEnginePublishReportsAStateNotWritten(t *testing.T) {
	tm := newTestMesh(t)
	th := tm.add(Roles{Therapist: true})
	st := &failingState{}
	th.eng.cfg.State = st
	now := tm.clk.Now()
	seq, _, _, err := th.eng.Publish([]fapp.Slot{testSlot(now, 1, 1)})
	if err != nil || seq != 1 {
		t.Fatal(seq, err)
	}
	st.fail = true
	if _, _, outs, err := th.eng.Publish([]fapp.Slot{testSlot(now, 2, 1), testSlot(now, 3, 2)}); !errors.Is(err, errDisk) || len(outs) != 0 {
		t.Fatalf("publish with a failing disk: %v, %d frames", err, len(outs))
	}
	if th.eng.cfg.Practice.Seq() != 1 || len(th.eng.Free()) != 1 || th.eng.Free()[0].ID != 1 {
		t.Fatalf("memory ahead of disk: seq %d, free %v", th.eng.cfg.Practice.Seq(), th.eng.Free())
	}
	if outs := th.eng.Reannounce(); len(outs) != 0 || th.eng.cfg.Practice.Seq() != 1 {
		t.Fatalf("renewal with a failing disk sent %d frames, seq %d", len(outs), th.eng.cfg.Practice.Seq())
	}
	st.fail = false
	if seq, _, _, err := th.eng.Publish([]fapp.Slot{testSlot(now, 2, 1)}); err != nil || seq != 2 {
		t.Fatalf("after the disk came back: seq %d, %v", seq, err)
	}
	_ = time.Second
}

// TestEngineTherapistBucketsBounded: 50,000 fresh therapist identities,
// none of whose buckets is ever full again in the window, keep the
// per-therapist buckets at about 2×MaxPaths, and an active therapist's
// limit holds throughout (its bucket stays in the current generation).
func TestEngineTherapistBucketsBounded(t *testing.T) {
	tm := newTestMesh(t)
	r := tm.add(Roles{Relay: true})
	now := tm.clk.Now()
	max := r.eng.cfg.MaxPaths
	var active crypto.Address
	active[0] = 0xAA
	for range DefaultTherapistBurst {
		if !r.eng.allowTherapist(active, now) {
			t.Fatal("burst refused")
		}
	}
	for i := range 50_000 {
		var a crypto.Address
		binary.BigEndian.PutUint64(a[:], uint64(i)+1)
		r.eng.allowTherapist(a, now)
		if n := r.eng.therapists.len(); n > 2*max {
			t.Fatalf("%d buckets after %d identities, max %d", n, i+1, 2*max)
		}
		if i%1000 == 0 && r.eng.allowTherapist(active, now) {
			t.Fatalf("the active therapist got a token back after %d identities", i)
		}
	}
	if r.eng.therapists.generations == 0 {
		t.Fatal("never rotated")
	}
}
