package keys

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

func addr(i int) [16]byte {
	var a [16]byte
	a[0], a[1], a[2], a[15] = byte(i>>16), byte(i>>8), byte(i), 0xa0
	return a
}

func hash(i int) [16]byte {
	var h [16]byte
	h[0], h[1], h[2], h[15] = byte(i>>16), byte(i>>8), byte(i), 0x40
	return h
}

func kp(owner, h, size int) Entry {
	b := bytes.Repeat([]byte{byte(h)}, size)
	return Entry{Owner: addr(owner), Hash16: hash(h), Bytes: b, NotAfter: t0.Add(30 * 24 * time.Hour)}
}

func mustPut(t *testing.T, c *KeyPackageCache, e Entry, now time.Time) {
	t.Helper()
	if err := c.Put(e, now); err != nil {
		t.Fatalf("put %x/%x: %v", e.Owner[:3], e.Hash16[:3], err)
	}
}

func has(c *KeyPackageCache, owner, h int, now time.Time) bool {
	_, ok := c.Get(addr(owner), hash(h), now)
	return ok
}

func TestCacheRoundTrip(t *testing.T) {
	c := NewCache(CacheConfig{})
	if got := c.Config(); got != DefaultCacheConfig {
		t.Fatalf("defaults %+v", got)
	}
	e := kp(1, 1, 100)
	e.Stored = t0.Add(-time.Hour) // Put sets it
	mustPut(t, c, e, t0)
	e.Bytes[0] = 0xff // the cache keeps its own copy
	got, ok := c.Get(addr(1), hash(1), t0.Add(time.Minute))
	if !ok || !got.Stored.Equal(t0) || got.Owner != addr(1) || got.Hash16 != hash(1) || !bytes.Equal(got.Bytes, bytes.Repeat([]byte{1}, 100)) {
		t.Fatalf("get: %v %+v", ok, got)
	}
	if _, ok := c.Get(addr(1), hash(2), t0); ok {
		t.Fatal("another hash of the same owner found")
	}
	if _, ok := c.Get(addr(2), hash(1), t0); ok {
		t.Fatal("the same hash of another owner found")
	}
	if s := c.Stats(); s.Hits != 1 || s.Misses != 2 {
		t.Fatalf("stats %+v", s)
	}
	if c.Len() != 1 || c.Bytes() != 100 || c.Owners() != 1 {
		t.Fatalf("len %d bytes %d owners %d", c.Len(), c.Bytes(), c.Owners())
	}
}

func TestCachePutRefuses(t *testing.T) {
	c := NewCache(CacheConfig{MaxBytes: 1000})
	if err := c.Put(kp(1, 1, 1001), t0); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("over MaxBytes: %v", err)
	}
	if err := c.Put(kp(1, 1, 0), t0); !errors.Is(err, ErrEntryTooLarge) {
		t.Fatalf("empty: %v", err)
	}
	e := kp(1, 1, 10)
	e.NotAfter = t0.Add(-time.Second)
	if err := c.Put(e, t0); !errors.Is(err, ErrEntryExpired) {
		t.Fatalf("expired: %v", err)
	}
	if c.Len() != 0 || c.Bytes() != 0 {
		t.Fatal("a refused entry was kept")
	}
	mustPut(t, c, kp(1, 1, 1000), t0) // exactly MaxBytes fits
}

func TestCacheReplaceSameHash(t *testing.T) {
	c := NewCache(CacheConfig{})
	mustPut(t, c, kp(1, 1, 100), t0)
	mustPut(t, c, kp(1, 2, 10), t0.Add(time.Second))
	e := kp(1, 1, 50)
	e.Bytes[0] = 9
	mustPut(t, c, e, t0.Add(2*time.Second))
	if c.Len() != 2 || c.Bytes() != 60 {
		t.Fatalf("len %d bytes %d after replacing", c.Len(), c.Bytes())
	}
	if s := c.Stats(); s.EvictedPerAddress+s.EvictedLRU+s.EvictedTTL != 0 {
		t.Fatalf("a replacement counted as an eviction: %+v", s)
	}
	// The replacement is the owner's newest.
	if got, ok := c.Latest(addr(1), t0.Add(3*time.Second)); !ok || got.Hash16 != hash(1) || got.Bytes[0] != 9 || !got.Stored.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("latest %v %+v", ok, got)
	}
}

func TestCachePerAddress(t *testing.T) {
	c := NewCache(CacheConfig{PerAddress: 2})
	mustPut(t, c, kp(1, 1, 10), t0)
	mustPut(t, c, kp(2, 9, 10), t0)
	mustPut(t, c, kp(1, 2, 10), t0.Add(time.Second))
	// Touching the oldest does not save it: per owner the oldest stored goes.
	if !has(c, 1, 1, t0.Add(2*time.Second)) {
		t.Fatal("entry 1 missing")
	}
	mustPut(t, c, kp(1, 3, 10), t0.Add(3*time.Second))
	if has(c, 1, 1, t0.Add(4*time.Second)) || !has(c, 1, 2, t0.Add(4*time.Second)) || !has(c, 1, 3, t0.Add(4*time.Second)) || !has(c, 2, 9, t0.Add(4*time.Second)) {
		t.Fatal("want owner 1's oldest gone, the rest kept")
	}
	if s := c.Stats(); s.EvictedPerAddress != 1 || s.EvictedLRU != 0 {
		t.Fatalf("stats %+v", s)
	}
	if got, ok := c.Latest(addr(1), t0.Add(5*time.Second)); !ok || got.Hash16 != hash(3) {
		t.Fatalf("latest %v %x", ok, got.Hash16)
	}
	if _, ok := c.Latest(addr(3), t0); ok {
		t.Fatal("latest of an unknown owner")
	}
}

func TestCacheLRUByCount(t *testing.T) {
	c := NewCache(CacheConfig{Max: 3})
	for i := 1; i <= 3; i++ {
		mustPut(t, c, kp(i, i, 10), t0)
	}
	has(c, 1, 1, t0) // 1 is now the most recently used: 2 is the least
	mustPut(t, c, kp(4, 4, 10), t0)
	if has(c, 2, 2, t0) || !has(c, 1, 1, t0) || !has(c, 3, 3, t0) || !has(c, 4, 4, t0) {
		t.Fatal("want the least recently used (2) gone")
	}
	c.Latest(addr(3), t0) // Latest touches too: 1 is the least recently used
	has(c, 4, 4, t0)
	mustPut(t, c, kp(5, 5, 10), t0)
	if has(c, 1, 1, t0) || !has(c, 3, 3, t0) {
		t.Fatal("Latest did not mark its entry used")
	}
	if s := c.Stats(); s.EvictedLRU != 2 || c.Len() != 3 || c.Owners() != 3 {
		t.Fatalf("stats %+v len %d owners %d", s, c.Len(), c.Owners())
	}
}

func TestCacheLRUByBytes(t *testing.T) {
	c := NewCache(CacheConfig{MaxBytes: 100})
	mustPut(t, c, kp(1, 1, 40), t0)
	mustPut(t, c, kp(2, 2, 40), t0)
	has(c, 1, 1, t0)
	mustPut(t, c, kp(3, 3, 30), t0) // 110 > 100: 2 goes
	if has(c, 2, 2, t0) || !has(c, 1, 1, t0) || !has(c, 3, 3, t0) || c.Bytes() != 70 {
		t.Fatalf("bytes %d", c.Bytes())
	}
	mustPut(t, c, kp(4, 4, 100), t0) // takes it all
	if c.Len() != 1 || c.Bytes() != 100 || !has(c, 4, 4, t0) {
		t.Fatalf("len %d bytes %d", c.Len(), c.Bytes())
	}
	if s := c.Stats(); s.EvictedLRU != 3 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheTTL(t *testing.T) {
	c := NewCache(CacheConfig{TTL: time.Hour})
	mustPut(t, c, kp(1, 1, 10), t0)
	if !has(c, 1, 1, t0.Add(time.Hour)) {
		t.Fatal("gone at exactly Stored+TTL")
	}
	if has(c, 1, 1, t0.Add(time.Hour+time.Nanosecond)) {
		t.Fatal("found after Stored+TTL")
	}
	if c.Len() != 0 || c.Bytes() != 0 || c.Owners() != 0 {
		t.Fatal("the expired entry was not removed")
	}
	if s := c.Stats(); s.EvictedTTL != 1 || s.Misses != 1 || s.Hits != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCacheNotAfter(t *testing.T) {
	c := NewCache(CacheConfig{TTL: time.Hour})
	old := kp(1, 1, 10)
	mustPut(t, c, old, t0)
	soon := kp(1, 2, 10)
	soon.NotAfter = t0.Add(time.Minute)
	mustPut(t, c, soon, t0.Add(time.Second))
	if got, ok := c.Latest(addr(1), t0.Add(time.Minute)); !ok || got.Hash16 != hash(2) {
		t.Fatal("the newest is not the latest")
	}
	// Past its NotAfter the newest is removed and the older one answers.
	if got, ok := c.Latest(addr(1), t0.Add(2*time.Minute)); !ok || got.Hash16 != hash(1) {
		t.Fatalf("latest past the newest's NotAfter: %v %x", ok, got.Hash16)
	}
	if c.Len() != 1 || c.Stats().EvictedTTL != 1 {
		t.Fatalf("len %d stats %+v", c.Len(), c.Stats())
	}
	if _, ok := c.Latest(addr(1), t0.Add(2*time.Hour)); ok || c.Len() != 0 {
		t.Fatal("latest past the TTL")
	}
	s := c.Stats()
	if s.EvictedTTL != 2 || s.Misses != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestCachePrune(t *testing.T) {
	c := NewCache(CacheConfig{TTL: time.Hour})
	for i := range 10 {
		mustPut(t, c, kp(i, i, 10), t0.Add(time.Duration(i)*time.Minute))
	}
	if n := c.Prune(t0.Add(time.Hour + 4*time.Minute + time.Second)); n != 5 || c.Len() != 5 || c.Bytes() != 50 {
		t.Fatalf("pruned %d, len %d bytes %d", n, c.Len(), c.Bytes())
	}
	if has(c, 4, 4, t0) || !has(c, 5, 5, t0) {
		t.Fatal("pruned the wrong entries")
	}
}

// TestCacheOwnerCannotEvictOthers: one owner putting many KeyPackages
// only replaces its own; nobody else loses an entry.
func TestCacheOwnerCannotEvictOthers(t *testing.T) {
	c := NewCache(CacheConfig{Max: 100})
	for i := range 50 {
		mustPut(t, c, kp(i, i, 100), t0)
	}
	for h := range 10000 {
		mustPut(t, c, kp(1000, 100000+h, 100), t0)
	}
	for i := range 50 {
		if !has(c, i, i, t0) {
			t.Fatalf("owner %d lost its entry to a flooding owner", i)
		}
	}
	if c.Len() != 52 {
		t.Fatalf("len %d, want 50 + the flooder's 2", c.Len())
	}
	if s := c.Stats(); s.EvictedLRU != 0 || s.EvictedPerAddress != 10000-2 {
		t.Fatalf("stats %+v", s)
	}
}

// TestCacheFreshOwnersEvictFairly: a thousand owners, each putting three
// KeyPackages, into 1024 slots: nobody holds more than PerAddress, and what
// is kept is exactly the 1024 most recently stored.
func TestCacheFreshOwnersEvictFairly(t *testing.T) {
	c := NewCache(CacheConfig{})
	type put struct{ owner, h int }
	var order []put
	now := t0
	for o := range 1000 {
		for j := range 3 {
			h := o*3 + j
			mustPut(t, c, kp(o, h, 100), now)
			order = append(order, put{o, h})
			now = now.Add(time.Millisecond)
		}
	}
	if c.Len() != 1024 {
		t.Fatalf("len %d", c.Len())
	}
	// Each owner's first put went to its PerAddress share; of the 2,000
	// left, the 976 least recently stored went.
	var kept []put
	for _, p := range order {
		if p.h%3 != 0 {
			kept = append(kept, p)
		}
	}
	kept = kept[len(kept)-1024:]
	perOwner := map[int]int{}
	for _, p := range kept {
		perOwner[p.owner]++
		if !has(c, p.owner, p.h, now) {
			t.Fatalf("owner %d entry %d missing", p.owner, p.h)
		}
	}
	for o, n := range perOwner {
		if n > 2 {
			t.Fatalf("owner %d holds %d", o, n)
		}
	}
	if s := c.Stats(); s.EvictedPerAddress != 1000 || s.EvictedLRU != 2000-1024 {
		t.Fatalf("stats %+v", s)
	}
}

// modelCache is the naive reference: a slice scanned in full.
type modelCache struct {
	cfg   CacheConfig
	es    []modelEntry
	clock int
}

type modelEntry struct {
	e    Entry
	used int
}

func (m *modelCache) expired(e Entry, now time.Time) bool {
	return now.After(e.Stored.Add(m.cfg.TTL)) || (!e.NotAfter.IsZero() && now.After(e.NotAfter))
}

func (m *modelCache) del(i int) { m.es = append(m.es[:i], m.es[i+1:]...) }

func (m *modelCache) put(e Entry, now time.Time) {
	for i, x := range m.es {
		if x.e.Owner == e.Owner && x.e.Hash16 == e.Hash16 {
			m.del(i)
			break
		}
	}
	m.clock++
	e.Stored = now
	m.es = append(m.es, modelEntry{e, m.clock})
	for {
		n, oldest := 0, -1
		for i, x := range m.es {
			if x.e.Owner == e.Owner {
				n++
				if oldest < 0 {
					oldest = i
				}
			}
		}
		if n <= m.cfg.PerAddress {
			break
		}
		m.del(oldest)
	}
	for {
		size := 0
		lru := 0
		for i, x := range m.es {
			size += len(x.e.Bytes)
			if x.used < m.es[lru].used {
				lru = i
			}
		}
		if len(m.es) <= m.cfg.Max && size <= m.cfg.MaxBytes {
			break
		}
		m.del(lru)
	}
}

func (m *modelCache) get(owner, h [16]byte, now time.Time) (Entry, bool) {
	for i, x := range m.es {
		if x.e.Owner == owner && x.e.Hash16 == h {
			if m.expired(x.e, now) {
				m.del(i)
				return Entry{}, false
			}
			m.clock++
			m.es[i].used = m.clock
			return x.e, true
		}
	}
	return Entry{}, false
}

func (m *modelCache) latest(owner [16]byte, now time.Time) (Entry, bool) {
	for i := len(m.es) - 1; i >= 0; i-- {
		x := m.es[i]
		if x.e.Owner != owner {
			continue
		}
		if m.expired(x.e, now) {
			m.del(i)
			continue
		}
		m.clock++
		m.es[i].used = m.clock
		return x.e, true
	}
	return Entry{}, false
}

// TestCacheAgainstModel runs random operations on the cache and on the
// naive model and compares every answer.
func TestCacheAgainstModel(t *testing.T) {
	cfg := CacheConfig{TTL: time.Minute, PerAddress: 3, Max: 20, MaxBytes: 600}
	for seed := range uint64(20) {
		r := rand.New(rand.NewPCG(seed, 7))
		c, m := NewCache(cfg), &modelCache{cfg: cfg}
		now := t0
		for step := range 3000 {
			now = now.Add(time.Duration(r.IntN(2000)) * time.Millisecond)
			o, h := r.IntN(12), r.IntN(8)
			switch op := r.IntN(10); {
			case op < 5:
				e := kp(o, h, 1+r.IntN(80))
				if r.IntN(4) == 0 {
					e.NotAfter = now.Add(time.Duration(r.IntN(90)) * time.Second)
				}
				mustPut(t, c, e, now)
				m.put(e, now)
			case op < 8:
				got, ok := c.Get(addr(o), hash(h), now)
				want, wok := m.get(addr(o), hash(h), now)
				if ok != wok || ok && (got.Hash16 != want.Hash16 || !bytes.Equal(got.Bytes, want.Bytes) || !got.Stored.Equal(want.Stored)) {
					t.Fatalf("seed %d step %d: get %d/%d = %v, model %v", seed, step, o, h, ok, wok)
				}
			default:
				got, ok := c.Latest(addr(o), now)
				want, wok := m.latest(addr(o), now)
				if ok != wok || ok && (got.Hash16 != want.Hash16 || !got.Stored.Equal(want.Stored)) {
					t.Fatalf("seed %d step %d: latest %d = %v %x, model %v %x", seed, step, o, ok, got.Hash16[:3], wok, want.Hash16[:3])
				}
			}
			size := 0
			for _, x := range m.es {
				size += len(x.e.Bytes)
			}
			if c.Len() != len(m.es) || c.Bytes() != size {
				t.Fatalf("seed %d step %d: len %d bytes %d, model %d %d", seed, step, c.Len(), c.Bytes(), len(m.es), size)
			}
		}
	}
}
