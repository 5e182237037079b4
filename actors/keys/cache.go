package keys

import (
	"container/list"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Entry is one KeyPackage this node holds for another node: the relay
// answers KeyPackage requests for Owner from it.
type Entry struct {
	Owner  [16]byte // the address the KeyPackage belongs to
	Hash16 [16]byte // the first 16 bytes of the KeyPackage's hash
	Bytes  []byte   // the KeyPackage as received (opaque here)
	// NotAfter is the end of the KeyPackage's lifetime; the zero time
	// means only the cache's TTL bounds it.
	NotAfter time.Time
	// Stored is when Put took it (Put sets it).
	Stored time.Time
}

// CacheConfig bounds a KeyPackageCache. Zero fields take the defaults of
// DefaultCacheConfig.
type CacheConfig struct {
	TTL        time.Duration // how long an entry is kept after Put (24h)
	PerAddress int           // entries kept per owner (2)
	Max        int           // entries kept in all (1024)
	MaxBytes   int           // bytes of KeyPackages kept in all (2 MiB)
}

// DefaultCacheConfig is the cache a node runs with unless told otherwise.
var DefaultCacheConfig = CacheConfig{TTL: 24 * time.Hour, PerAddress: 2, Max: 1024, MaxBytes: 2 << 20}

// Errors of Put.
var (
	// ErrEntryTooLarge: the KeyPackage is empty or larger than the
	// cache's MaxBytes.
	ErrEntryTooLarge = errors.New("keys: KeyPackage does not fit the cache")
	// ErrEntryExpired: the KeyPackage's NotAfter has already passed.
	ErrEntryExpired = errors.New("keys: KeyPackage has expired")
)

// CacheStats counts what the cache did.
type CacheStats struct {
	Hits, Misses uint64
	// Evictions by reason: expired (TTL or NotAfter), beyond the owner's
	// PerAddress share, least recently used beyond Max or MaxBytes.
	EvictedTTL, EvictedPerAddress, EvictedLRU uint64
}

// Eviction reasons, as metrics label them.
const (
	EvictTTL        = "ttl"
	EvictPerAddress = "per_address"
	EvictLRU        = "lru"
)

type cacheKey struct{ owner, hash [16]byte }

type cacheItem struct {
	e   Entry
	lru *list.Element // in KeyPackageCache.lru, Value is *cacheItem
}

// KeyPackageCache holds the KeyPackages of other nodes, bounded per owner
// (PerAddress, the owner's oldest goes first), in all (Max entries and
// MaxBytes, the least recently used goes first) and in time (TTL after
// Put, and the entry's own NotAfter). Every operation is O(1) but for a
// walk over one owner's at most PerAddress entries.
//
// It is plain state owned by the keys actor; it is not safe for
// concurrent use.
type KeyPackageCache struct {
	cfg    CacheConfig
	items  map[cacheKey]*cacheItem
	owners map[[16]byte][]*cacheItem // per owner, oldest first
	lru    *list.List                // front: most recently used
	bytes  int
	stats  CacheStats
}

// NewCache returns an empty cache.
func NewCache(cfg CacheConfig) *KeyPackageCache {
	d := DefaultCacheConfig
	if cfg.TTL <= 0 {
		cfg.TTL = d.TTL
	}
	if cfg.PerAddress <= 0 {
		cfg.PerAddress = d.PerAddress
	}
	if cfg.Max <= 0 {
		cfg.Max = d.Max
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = d.MaxBytes
	}
	return &KeyPackageCache{
		cfg:    cfg,
		items:  make(map[cacheKey]*cacheItem),
		owners: make(map[[16]byte][]*cacheItem),
		lru:    list.New(),
	}
}

// Config is the cache's configuration with its defaults filled in.
func (c *KeyPackageCache) Config() CacheConfig { return c.cfg }

// Put stores e (Stored set to now) as its owner's newest entry, replacing
// one with the same owner and hash. Beyond PerAddress the owner's oldest
// entry goes; beyond Max or MaxBytes the least recently used entries of
// any owner go. The cache keeps its own copy of e.Bytes.
func (c *KeyPackageCache) Put(e Entry, now time.Time) error {
	if len(e.Bytes) == 0 || len(e.Bytes) > c.cfg.MaxBytes {
		return fmt.Errorf("%w: %d bytes, the cache holds 1 to %d", ErrEntryTooLarge, len(e.Bytes), c.cfg.MaxBytes)
	}
	if !e.NotAfter.IsZero() && now.After(e.NotAfter) {
		return fmt.Errorf("%w: not after %s, now %s", ErrEntryExpired, e.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	k := cacheKey{e.Owner, e.Hash16}
	if old, ok := c.items[k]; ok {
		c.remove(old) // replaced: not an eviction
	}
	e.Bytes = append([]byte(nil), e.Bytes...)
	e.Stored = now
	it := &cacheItem{e: e}
	it.lru = c.lru.PushFront(it)
	c.items[k] = it
	c.owners[e.Owner] = append(c.owners[e.Owner], it)
	c.bytes += len(e.Bytes)
	for own := c.owners[e.Owner]; len(own) > c.cfg.PerAddress; own = c.owners[e.Owner] {
		c.remove(own[0])
		c.stats.EvictedPerAddress++
	}
	for c.lru.Len() > c.cfg.Max || c.bytes > c.cfg.MaxBytes {
		c.remove(c.lru.Back().Value.(*cacheItem))
		c.stats.EvictedLRU++
	}
	return nil
}

// Get returns the entry of owner with hash16 and marks it used. An expired
// entry counts as absent and is removed. The Bytes returned belong to the
// cache: do not modify them.
func (c *KeyPackageCache) Get(owner, hash16 [16]byte, now time.Time) (Entry, bool) {
	it, ok := c.items[cacheKey{owner, hash16}]
	if ok && c.expired(it, now) {
		c.remove(it)
		c.stats.EvictedTTL++
		ok = false
	}
	if !ok {
		c.stats.Misses++
		return Entry{}, false
	}
	c.lru.MoveToFront(it.lru)
	c.stats.Hits++
	return it.e, true
}

// Latest returns owner's most recently stored entry that has not expired
// and marks it used; expired entries it meets are removed.
func (c *KeyPackageCache) Latest(owner [16]byte, now time.Time) (Entry, bool) {
	own := c.owners[owner]
	for i := len(own) - 1; i >= 0; i-- {
		it := own[i]
		if c.expired(it, now) {
			c.remove(it)
			c.stats.EvictedTTL++
			continue
		}
		c.lru.MoveToFront(it.lru)
		c.stats.Hits++
		return it.e, true
	}
	c.stats.Misses++
	return Entry{}, false
}

// Prune removes every expired entry and reports how many went (for the
// actor's timer; Get and Latest remove the expired entries they meet).
func (c *KeyPackageCache) Prune(now time.Time) int {
	n := 0
	for el := c.lru.Back(); el != nil; {
		prev := el.Prev()
		if it := el.Value.(*cacheItem); c.expired(it, now) {
			c.remove(it)
			c.stats.EvictedTTL++
			n++
		}
		el = prev
	}
	return n
}

// Len is the number of entries held (expired ones not yet removed
// included).
func (c *KeyPackageCache) Len() int { return c.lru.Len() }

// Bytes is the size of the KeyPackages held.
func (c *KeyPackageCache) Bytes() int { return c.bytes }

// Owners is the number of owners with at least one entry.
func (c *KeyPackageCache) Owners() int { return len(c.owners) }

// Stats returns the counters.
func (c *KeyPackageCache) Stats() CacheStats { return c.stats }

func (c *KeyPackageCache) expired(it *cacheItem, now time.Time) bool {
	return now.After(it.e.Stored.Add(c.cfg.TTL)) || (!it.e.NotAfter.IsZero() && now.After(it.e.NotAfter))
}

func (c *KeyPackageCache) remove(it *cacheItem) {
	c.lru.Remove(it.lru)
	delete(c.items, cacheKey{it.e.Owner, it.e.Hash16})
	c.bytes -= len(it.e.Bytes)
	own := c.owners[it.e.Owner]
	for i, o := range own {
		if o == it {
			own = slices.Delete(own, i, i+1)
			break
		}
	}
	if len(own) == 0 {
		delete(c.owners, it.e.Owner)
		return
	}
	c.owners[it.e.Owner] = own
}
