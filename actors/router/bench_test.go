package router

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/quicprochat/qpc/crypto"
	"github.com/quicprochat/qpc/messages"
)

// BenchmarkRelayForward measures the relay's per-envelope work: decode,
// look up the sender's key, verify its Ed25519 signature, check expiry and
// dedup, look up the next hop and re-encode with hop+1 — everything the
// router actor does for a forwarded envelope but the send. "verify" is the
// bare ed25519.Verify of the same signed bytes, measured in the same run:
// the ratio forward/verify (frames per second) says how close forwarding
// comes to the signature check that bounds it.
func BenchmarkRelayForward(b *testing.B) {
	relay, _ := crypto.NewIdentity(nil)
	src, _ := crypto.NewIdentity(nil)
	dst, _ := crypto.NewIdentity(nil)
	seal, _ := crypto.SealingKeyFor(relay)
	now := time.Now()
	core := &Core{ID: relay, Seal: seal, Table: NewTable(TableConfig{}), Dedup: NewDedup(1<<20, time.Hour),
		Replay: mustReplay(b), MaxHops: 8, TTL: time.Hour}
	for _, id := range []*crypto.Identity{src, dst} {
		r := Route{Address: id.Address(), NextHop: id.Address(), Link: "tcp:x", Hops: 1, Seq: 1}
		copy(r.SigningKey[:], id.PublicKey())
		if _, err := core.Table.Update(r, now); err != nil {
			b.Fatal(err)
		}
	}
	// Distinct envelopes (dedup would drop repeats), signed before timing.
	const distinct = 4096
	frames := make([][]byte, distinct)
	envs := make([]messages.Envelope, distinct)
	for i := range frames {
		payload := make([]byte, 80) // a sealed 32-byte text
		payload[0], payload[1] = byte(i), byte(i>>8)
		e := messages.NewEnvelope(src.Address(), dst.Address(), 8, now.Add(time.Hour), messages.PayloadSealed, payload)
		if err := e.Sign(src.Sign); err != nil {
			b.Fatal(err)
		}
		f, err := messages.EncodeEnvelope(e)
		if err != nil {
			b.Fatal(err)
		}
		frames[i], envs[i] = f, e
	}
	b.Run("forward", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			if i%distinct == 0 {
				core.Dedup = NewDedup(1<<20, time.Hour) // fresh ids each round
			}
			acts := core.HandleEnvelope(frames[i%distinct], src.Address(), now)
			if len(acts) != 1 || acts[0].Kind != Forward {
				b.Fatalf("action %+v", acts)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "envelopes/s")
	})
	b.Run("verify", func(b *testing.B) {
		pub := src.PublicKey()
		msgs := make([][]byte, distinct)
		for i := range msgs {
			m, err := envs[i].SigningBytes()
			if err != nil {
				b.Fatal(err)
			}
			msgs[i] = m
		}
		b.ResetTimer()
		for i := range b.N {
			if !ed25519.Verify(pub, msgs[i%distinct], envs[i%distinct].Signature) {
				b.Fatal("verify failed")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "envelopes/s")
	})
}

func mustReplay(b *testing.B) *crypto.ReplayWindow {
	w, err := crypto.NewReplayWindow(nil, "", crypto.ReplayLimits{})
	if err != nil {
		b.Fatal(err)
	}
	return w
}
