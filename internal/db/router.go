package db

import (
	"context"
	"database/sql"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/uptrace/bun"
)

// DefaultSticky is RouterOptions.Sticky when it is zero (DATABASE_READ_STICKY's default).
const DefaultSticky = 5 * time.Second

// Router decides which database a read goes to when a read database (DATABASE_READ_URL, a
// streaming replica of the primary) is configured. The transport opens a session per GraphQL
// operation (Session); services read through Reader(ctx, primary), which gives the read database
// only in a query operation's session, and the primary everywhere else: mutations and whatever
// they read, transactions (a bun.Tx never goes through Reader), background jobs, subscriptions.
//
// Read-your-writes: after a caller's mutation the primary's WAL position is recorded for the
// caller (Wrote) for Sticky; until then the caller's query operations read the primary unless
// the read database has already replayed that position (pg_last_wal_replay_lsn). A read
// database that is not a standby has no replay position, and the caller stays on the primary
// for the whole window. The positions live in Marks: Redis to share them between instances,
// else this process's memory.
type Router struct {
	primary, read *bun.DB
	sticky        time.Duration
	marks         Marks
	logger        *slog.Logger
}

// RouterOptions configure NewRouter.
type RouterOptions struct {
	// Sticky is how long after a caller's write their reads stay on the primary unless the read
	// database has replayed it sooner (DATABASE_READ_STICKY). Default DefaultSticky.
	Sticky time.Duration
	// Marks keeps the callers' write positions. Default NewMemoryMarks(): one instance only; give
	// every instance the same NewRedisMarks when there are several.
	Marks Marks
	// Logger receives failures to record or read a position (the reads then go to the
	// primary). Default slog.Default().
	Logger *slog.Logger
}

// NewRouter returns a Router between primary and read. With read nil (DATABASE_READ_URL unset)
// every read goes to the primary and Session and Wrote do nothing.
func NewRouter(primary, read *bun.DB, o RouterOptions) *Router {
	if o.Sticky <= 0 {
		o.Sticky = DefaultSticky
	}
	if o.Marks == nil {
		o.Marks = NewMemoryMarks()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Router{primary: primary, read: read, sticky: o.Sticky, marks: o.Marks, logger: o.Logger}
}

// Primary returns the primary database.
func (r *Router) Primary() *bun.DB { return r.primary }

// Read returns the read database, nil when there is none.
func (r *Router) Read() *bun.DB { return r.read }

type sessionKey struct{}

// session is one operation's routing: the database is chosen at its first read, so every read of
// the operation (its resolvers, its loaders) sees the same one.
type session struct {
	r      *Router
	caller string
	writes bool
	once   sync.Once
	db     *bun.DB
}

// Session returns ctx for one operation of caller (a user id; "" for an anonymous caller, who
// cannot have written). writes is true for a mutation: none of its reads go to the read database.
func (r *Router) Session(ctx context.Context, caller string, writes bool) context.Context {
	if r.read == nil {
		return ctx
	}
	return context.WithValue(ctx, sessionKey{}, &session{r: r, caller: caller, writes: writes})
}

// Reader returns the database for a read that tolerates a replica's lag: the read database when
// ctx is a query operation's session (Router.Session) on primary's router, unless its caller's
// own write may not have reached it yet; primary otherwise.
func Reader(ctx context.Context, primary *bun.DB) *bun.DB {
	s, _ := ctx.Value(sessionKey{}).(*session)
	if s == nil || s.writes || s.r.primary != primary {
		return primary
	}
	s.once.Do(func() { s.db = s.r.choose(ctx, s.caller) })
	return s.db
}

// choose picks the database of caller's reads.
func (r *Router) choose(ctx context.Context, caller string) *bun.DB {
	if caller == "" {
		return r.read
	}
	mark, ok, err := r.marks.Get(ctx, caller)
	if err != nil {
		r.logger.WarnContext(ctx, "read routing: caller's last write unknown, reading the primary", "err", err)
		return r.primary
	}
	if !ok {
		return r.read
	}
	var replay sql.NullInt64
	if err := r.read.NewRaw("SELECT (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint").Scan(ctx, &replay); err != nil {
		r.logger.WarnContext(ctx, "read routing: replay position unknown, reading the primary", "err", err)
		return r.primary
	}
	if Replayed(mark, replay) {
		return r.read
	}
	return r.primary
}

// Replayed reports whether a read database whose replay position (pg_last_wal_replay_lsn, in
// bytes) is replay has applied the write at mark. A server that is not a standby has none
// (NULL): its state cannot be compared with the primary's, so it counts as not replayed.
func Replayed(mark int64, replay sql.NullInt64) bool {
	return replay.Valid && replay.Int64 >= mark
}

// Wrote records that caller's write has committed: their reads stay on the primary for Sticky,
// or until the read database has replayed the primary's current WAL position. Call it after
// the commit (the transport does, after every mutation). Failures are logged: if the position
// cannot be read the caller stays on the primary for the whole window.
func (r *Router) Wrote(ctx context.Context, caller string) {
	if r.read == nil || caller == "" {
		return
	}
	// The response is not sent yet: the mark must be in place whether or not the client waits.
	ctx = context.WithoutCancel(ctx)
	var lsn int64
	if err := r.primary.NewRaw("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint").Scan(ctx, &lsn); err != nil {
		r.logger.WarnContext(ctx, "read routing: primary's WAL position unknown, caller stays on the primary", "err", err)
		lsn = math.MaxInt64
	}
	if err := r.marks.Mark(ctx, caller, lsn, r.sticky); err != nil {
		r.logger.WarnContext(ctx, "read routing: caller's write not recorded", "err", err)
	}
}
