package loadgen

import (
	"flag"
	"time"
)

// Flags are the flags every browse-shaped benchmark command shares.
type Flags struct {
	// DatabaseURL is the PostgreSQL server the benchmark database is created on.
	DatabaseURL string
	// Leads is how many demo leads are seeded.
	Leads int
	// Duration and Warmup are the measured and unmeasured time of a side.
	Duration, Warmup time.Duration
	// Concurrency is the number of workers of a side; Pool its database connections.
	Concurrency, Pool int
	// Pages is how many pages a worker walks through cursors before starting again.
	Pages int
	// Fresh drops the benchmark database and seeds it again.
	Fresh bool
}

// Register defines the flags on fs: defaultURL is the server, database the benchmark database's
// name (for the help text), duration and warmup the defaults of a side's times.
func (f *Flags) Register(fs *flag.FlagSet, defaultURL, database string, duration, warmup time.Duration) {
	fs.StringVar(&f.DatabaseURL, "database-url", defaultURL,
		"PostgreSQL server to create the benchmark database "+database+" on (its database part is only used to connect)")
	fs.IntVar(&f.Leads, "leads", 100_000, "demo leads to seed")
	fs.DurationVar(&f.Duration, "duration", duration, "measured time per side")
	fs.DurationVar(&f.Warmup, "warmup", warmup, "unmeasured warm-up per side")
	fs.IntVar(&f.Concurrency, "concurrency", 16, "concurrent workers per side")
	fs.IntVar(&f.Pool, "pool", 20, "database connections of each side (the server's DB_MAX_CONNS and the pgxpool size)")
	fs.IntVar(&f.Pages, "pages", 5, "pages a worker walks through cursors before starting again from the first")
	fs.BoolVar(&f.Fresh, "fresh", false, "drop the benchmark database and seed it again")
}
