package ratelimit

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// memoryShards spreads the buckets over independently locked maps, so concurrent requests of
// different callers rarely wait for each other.
const memoryShards = 64

// sweepEvery is how often a shard forgets its full buckets (those whose theoretical arrival time
// has passed: they are the same as no bucket at all).
const sweepEvery = time.Minute

// Memory is the in-process Limiter: limits hold per server instance. It runs the same GCRA
// arithmetic as the Redis store's script (go-redis/redis_rate), in integer nanoseconds.
type Memory struct {
	now    func() time.Time
	base   time.Time
	seed   maphash.Seed
	shards [memoryShards]memoryShard
}

type memoryShard struct {
	mu sync.Mutex
	// tats holds each key's theoretical arrival time, in nanoseconds since base.
	tats      map[string]int64
	lastSweep int64
}

// MemoryOptions configure NewMemory.
type MemoryOptions struct {
	// Now is the clock. Default time.Now; tests pass a fake one.
	Now func() time.Time
}

// NewMemory returns an empty in-process Limiter.
func NewMemory(o MemoryOptions) *Memory {
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Memory{now: o.Now, base: o.Now(), seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].tats = map[string]int64{}
	}
	return m
}

// Allow implements Limiter; it never fails.
func (m *Memory) Allow(_ context.Context, key string, limit Limit, n int) (Result, error) {
	if !limit.valid() || n < 1 {
		return Result{}, errInvalidLimit(limit)
	}
	wall := m.now()
	now := int64(wall.Sub(m.base))
	emission := int64(limit.Period) / int64(limit.Rate)
	burstOffset := emission * int64(limit.Rate)

	s := &m.shards[maphash.String(m.seed, key)%memoryShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if now-s.lastSweep >= int64(sweepEvery) {
		for k, tat := range s.tats {
			if tat <= now {
				delete(s.tats, k)
			}
		}
		s.lastSweep = now
	}
	tat, ok := s.tats[key]
	if !ok || tat < now {
		tat = now
	}
	newTat := tat + int64(n)*emission
	diff := now - (newTat - burstOffset)
	if diff < 0 {
		return Result{Limit: limit.Rate, RetryAfter: time.Duration(-diff), ResetAt: wall.Add(time.Duration(tat - now))}, nil
	}
	s.tats[key] = newTat
	return Result{Allowed: true, Limit: limit.Rate, Remaining: int(diff / emission), ResetAt: wall.Add(time.Duration(newTat - now))}, nil
}
