package app

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target when GOGC is not set: the heap may grow to
// five times what is live before a collection.
//
// The API's garbage is short-lived and large next to what stays live: a browse page allocates
// about 0.8 MB that is garbage once its response is written, while the live heap stays at a few
// tens of MB. At Go's default of 100 the collector runs every few dozen requests and takes a
// tenth of the CPU (the browse benchmark's profile); at 400 it takes about 3%, and the process
// stays a few hundred MB. Operators who need a tighter bound set GOGC or GOMEMLIMIT, which the
// runtime reads as usual and which TuneGC leaves alone.
const DefaultGCPercent = 400

// TuneGC applies DefaultGCPercent unless GOGC is set, and returns the percentage in force.
// `leadmarket serve` calls it at start-up, and so does the browse benchmark for its in-process
// server.
func TuneGC() int {
	if v, ok := os.LookupEnv("GOGC"); ok && v != "" {
		p := debug.SetGCPercent(100)
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}
