package app_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// tableOwners is docs/ARCHITECTURE.md's "who owns which table": the package directory whose
// non-test code may name the table in SQL.
var tableOwners = map[string]string{
	"leads":                 "internal/lead",
	"lead_purchases":        "internal/marketplace",
	"workspaces":            "internal/workspace",
	"workspace_members":     "internal/workspace",
	"credit_balances":       "internal/credit",
	"credit_ledger":         "internal/credit",
	"credit_packages":       "internal/billing",
	"credit_orders":         "internal/billing",
	"stripe_events":         "internal/billing",
	"stripe_event_attempts": "internal/billing",
	"partners":              "internal/partner",
	"partner_members":       "internal/partner",
	"partner_earnings":      "internal/partner",
	"audit_logs":            "internal/audit",
	"security_events":       "internal/audit",
	"users":                 "internal/user",
	"idempotency_keys":      "internal/idempotency",
	"rate_limit_violations": "internal/ratelimit",
	"lead_uploads":          "internal/ingest",
	"lead_upload_rows":      "internal/ingest",
	"lead_upload_keys":      "internal/ingest",
	"lead_rejections":       "internal/ingest",
	"lead_verifications":    "internal/verify",
	"bounce_reports":        "internal/verify",
	"workspace_leads":       "internal/pipeline",
	"exports":               "internal/export",
	"export_chunks":         "internal/export",
}

// ownershipExceptions are the documented reads and writes outside the owner (ARCHITECTURE.md):
// a file (or directory prefix) and the tables it may name.
var ownershipExceptions = map[string][]string{
	// lead's browse reads purchases and memberships to unmask what "my workspace" bought.
	"internal/lead/query.go": {"lead_purchases", "workspace_members"},
	// The demo data loader makes its accounts set-based.
	"internal/seed/": {"users", "workspaces", "workspace_members", "partners", "partner_members", "credit_packages"},
	// Benchmarks run raw SQL as their baselines and check results with it.
	"bench/": {"*"},
}

// TestTablesHaveOneOwner fails when non-test code names a table in SQL outside the package that
// owns it: another package must call the owner instead.
func TestTablesHaveOneOwner(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	sqlRef := regexp.MustCompile(`(?i)\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+([a-z_]+)\b`)
	var violations []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" || rel == ".data" || rel == "migrations" || rel == "internal/dbtest" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(rel, "graph/generated") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range sqlRef.FindAllStringSubmatch(string(src), -1) {
			table := strings.ToLower(m[1])
			owner, known := tableOwners[table]
			if !known || strings.HasPrefix(rel, owner+"/") || excepted(rel, table) {
				continue
			}
			violations = append(violations, rel+" names "+table+" (owned by "+owner+")")
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, violations, "call the owning package instead")
}

func excepted(file, table string) bool {
	for prefix, tables := range ownershipExceptions {
		if strings.HasPrefix(file, prefix) {
			for _, t := range tables {
				if t == table || t == "*" {
					return true
				}
			}
		}
	}
	return false
}
