// Package migrations holds the versioned SQL migrations, embedded in the binary and applied by
// internal/db with bun's migrator.
package migrations

import "embed"

// FS holds every *.sql migration; file names start with a UTC timestamp that orders them.
//
//go:embed *.sql
var FS embed.FS
