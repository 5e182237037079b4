package mls

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"
)

// Size is the wire size of one kind of object, for the design notes and the
// link budget.
type Size struct {
	Name  string
	Bytes int
	Note  string
}

// Sizes measures the objects this package puts on the wire (and the stored
// group state) by making them with fresh identities. The crypto in them has
// fixed lengths and no padding is applied, so the numbers are the same on
// every run except where Note says otherwise.
func Sizes() ([]Size, error) {
	newID := func() ed25519.PrivateKey {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			panic(err) // crypto/rand does not fail
		}
		return priv
	}
	notAfter := time.Now().Add(24 * time.Hour)
	parsedKP := func() (*KeyPackage, error) {
		own, err := NewKeyPackage(newID(), notAfter, false)
		if err != nil {
			return nil, err
		}
		return ParseKeyPackage(own.Bytes(), time.Now())
	}
	// grow makes a group of n members (creator first) and returns it.
	grow := func(n int) (*Group, error) {
		g, err := Create(newID(), [16]byte{1})
		if err != nil {
			return nil, err
		}
		for g.memberCount() < n {
			kp, err := parsedKP()
			if err != nil {
				return nil, err
			}
			if _, _, err := g.Add(kp); err != nil {
				return nil, err
			}
		}
		return g, nil
	}
	var out []Size
	add := func(name string, n int, note string) { out = append(out, Size{name, n, note}) }

	own, err := NewKeyPackage(newID(), notAfter, false)
	if err != nil {
		return nil, err
	}
	add("KeyPackage", len(own.Bytes()), "bare KeyPackage as announced and fetched")

	for _, n := range []int{2, 10} {
		g, err := grow(n - 1)
		if err != nil {
			return nil, err
		}
		kp, err := parsedKP()
		if err != nil {
			return nil, err
		}
		commit, welcome, err := g.Add(kp)
		if err != nil {
			return nil, err
		}
		add(fmt.Sprintf("Welcome, %d members", n), len(welcome),
			fmt.Sprintf("adding member %d to %d; with ratchet tree; grows with the group", n, n-1))
		if n == 2 {
			add("Commit, add 1 to a 1-member group", len(commit), "no UpdatePath (committer alone)")
		}
	}

	g2, err := grow(2)
	if err != nil {
		return nil, err
	}
	kp, err := parsedKP()
	if err != nil {
		return nil, err
	}
	commit, _, err := g2.Add(kp)
	if err != nil {
		return nil, err
	}
	add("Commit, add 1 to a 2-member group", len(commit), "PrivateMessage; carries the KeyPackage and an UpdatePath")

	victim := g2.Members()[1]
	commit, err = g2.Remove(victim)
	if err != nil {
		return nil, err
	}
	add("Commit, remove 1 from a 3-member group", len(commit), "PrivateMessage with UpdatePath")

	commit, err = g2.SelfUpdate()
	if err != nil {
		return nil, err
	}
	add("Commit, self-update in a 2-member group", len(commit), "PrivateMessage with UpdatePath")

	psk, err := NewPSK()
	if err != nil {
		return nil, err
	}
	if err := g2.StagePSK(psk); err != nil {
		return nil, err
	}
	commit, err = g2.SelfUpdate()
	if err != nil {
		return nil, err
	}
	add("Commit with a PSK, self-update in a 2-member group", len(commit), "the same with one external PSK proposal (id 19 B, nonce 32 B)")

	g3, err := grow(3)
	if err != nil {
		return nil, err
	}
	msg, err := g3.Encrypt(make([]byte, 32))
	if err != nil {
		return nil, err
	}
	add("Application message, 32-byte text", len(msg), "PrivateMessage in a 3-member group; overhead is fixed")
	st, err := g3.Marshal()
	if err != nil {
		return nil, err
	}
	add("Group state, 3 members", len(st), "mls-go JSON; varies by a few bytes with secret-tree counters and map order")
	return out, nil
}

func (g *Group) memberCount() int { return len(g.Members()) }
