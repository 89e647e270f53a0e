// Package partner holds lead suppliers: who they are, who works for them, and what they earn on
// every sale of their leads.
package partner

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// Partner is a lead supplier.
type Partner struct {
	ID                   string    `bun:"id"`
	Name                 string    `bun:"name"`
	CommissionRate       float64   `bun:"commission_rate"`
	VerificationPassRate float64   `bun:"verification_pass_rate"`
	CreatedAt            time.Time `bun:"created_at"`
}

// ByIDs returns the partners with ids, in no particular order; unknown ids are left out. It is
// the batch function behind the Lead.partner loader: one statement for any number of ids.
func ByIDs(ctx context.Context, db bun.IDB, ids []string) ([]Partner, error) {
	var ps []Partner
	if len(ids) == 0 {
		return ps, nil
	}
	err := db.NewSelect().TableExpr("partners").
		Column("id", "name", "commission_rate", "verification_pass_rate", "created_at").
		Where("id IN (?)", bun.In(ids)).Scan(ctx, &ps)
	if err != nil {
		return nil, fmt.Errorf("partners by ids: %w", err)
	}
	return ps, nil
}

// ForUser returns the partners userID is a member of, by name.
func ForUser(ctx context.Context, db bun.IDB, userID string) ([]Partner, error) {
	var ps []Partner
	err := db.NewRaw(`SELECT p.id, p.name, p.commission_rate, p.verification_pass_rate, p.created_at
		FROM partner_members m JOIN partners p ON p.id = m.partner_id WHERE m.user_id = ? ORDER BY p.name, p.id`, userID).
		Scan(ctx, &ps)
	if err != nil {
		return nil, fmt.Errorf("partners of %s: %w", userID, err)
	}
	return ps, nil
}

// Service reads partners for the API.
type Service struct {
	db bun.IDB
}

// NewService returns a Service on db.
func NewService(db bun.IDB) *Service { return &Service{db: db} }

// ByIDs is ByIDs on the service's database.
func (s *Service) ByIDs(ctx context.Context, ids []string) ([]Partner, error) {
	return ByIDs(ctx, s.db, ids)
}

// ForUser is ForUser on the service's database.
func (s *Service) ForUser(ctx context.Context, userID string) ([]Partner, error) {
	return ForUser(ctx, s.db, userID)
}
