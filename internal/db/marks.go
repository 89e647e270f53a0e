package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Marks remember, per caller, the primary's WAL position after the caller's latest write, for a
// while (Router's read-your-writes window).
type Marks interface {
	// Mark records lsn as caller's position for ttl. A greater position recorded before is kept
	// (two writes finishing out of order); either way the record lives ttl from now.
	Mark(ctx context.Context, caller string, lsn int64, ttl time.Duration) error
	// Get returns caller's position; ok is false when none is recorded or it has expired.
	Get(ctx context.Context, caller string) (lsn int64, ok bool, err error)
}

// MemoryMarks are Marks in this process's memory: right for one instance (or no read database).
type MemoryMarks struct {
	mu        sync.Mutex
	marks     map[string]memoryMark
	nextSweep time.Time
	now       func() time.Time
}

type memoryMark struct {
	lsn   int64
	until time.Time
}

// NewMemoryMarks returns empty MemoryMarks.
func NewMemoryMarks() *MemoryMarks {
	return &MemoryMarks{marks: map[string]memoryMark{}, now: time.Now}
}

// Mark implements Marks. Expired marks are dropped at most once per ttl, so the map holds about
// the callers who wrote within the last two windows.
func (m *MemoryMarks) Mark(_ context.Context, caller string, lsn int64, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if now.After(m.nextSweep) {
		for k, v := range m.marks {
			if !now.Before(v.until) {
				delete(m.marks, k)
			}
		}
		m.nextSweep = now.Add(ttl)
	}
	if old, ok := m.marks[caller]; ok && now.Before(old.until) && old.lsn > lsn {
		lsn = old.lsn
	}
	m.marks[caller] = memoryMark{lsn: lsn, until: now.Add(ttl)}
	return nil
}

// Get implements Marks.
func (m *MemoryMarks) Get(_ context.Context, caller string) (int64, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.marks[caller]
	if !ok || !m.now().Before(v.until) {
		return 0, false, nil
	}
	return v.lsn, true, nil
}

// DefaultMarksPrefix starts every key RedisMarks write.
const DefaultMarksPrefix = "leadmarket:readmark:"

// RedisMarks are Marks shared by every instance on one Redis: a caller's next request sees their
// write wherever it lands. A key per caller, expiring with the window.
type RedisMarks struct {
	client *redis.Client
	prefix string
}

// NewRedisMarks returns Marks on client under prefix (DefaultMarksPrefix when empty).
func NewRedisMarks(client *redis.Client, prefix string) *RedisMarks {
	if prefix == "" {
		prefix = DefaultMarksPrefix
	}
	return &RedisMarks{client: client, prefix: prefix}
}

// markScript sets KEYS[1] to ARGV[1] unless it holds a greater position, and makes it expire
// ARGV[2] milliseconds from now, in one round trip. Positions are below 2^53 (8 PiB of WAL), so
// Lua's numbers hold them exactly.
var markScript = redis.NewScript(`
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local lsn = tonumber(ARGV[1])
if cur > lsn then lsn = cur end
redis.call('SET', KEYS[1], string.format('%d', lsn), 'PX', ARGV[2])
return lsn`)

// Mark implements Marks.
func (m *RedisMarks) Mark(ctx context.Context, caller string, lsn int64, ttl time.Duration) error {
	if lsn > 1<<53 {
		lsn = 1 << 53 // "unknown, assume far ahead" (Router.Wrote's MaxInt64) in what Lua holds
	}
	if err := markScript.Run(ctx, m.client, []string{m.prefix + caller}, lsn, ttl.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("read mark of %s: %w", caller, err)
	}
	return nil
}

// Get implements Marks.
func (m *RedisMarks) Get(ctx context.Context, caller string) (int64, bool, error) {
	v, err := m.client.Get(ctx, m.prefix+caller).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read mark of %s: %w", caller, err)
	}
	lsn, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("read mark of %s: %q is not a position", caller, v)
	}
	return lsn, true, nil
}
