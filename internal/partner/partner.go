// Package partner holds lead suppliers: who they are, who works for them, and what they earn on
// every sale of their leads.
package partner

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/db"
)

// Partner is a lead supplier.
type Partner struct {
	ID                   string    `bun:"id"`
	Name                 string    `bun:"name"`
	CommissionRate       float64   `bun:"commission_rate"`
	VerificationPassRate float64   `bun:"verification_pass_rate"`
	CreatedAt            time.Time `bun:"created_at"`
}

// byIDsIn is ByIDs inside a transaction (commission accrual reads the rates it charges at).
func byIDsIn(ctx context.Context, tx bun.IDB, ids []string) ([]Partner, error) {
	var ps []Partner
	err := tx.NewSelect().TableExpr("partners").
		Column("id", "name", "commission_rate", "verification_pass_rate", "created_at").
		Where("id IN (?)", bun.List(ids)).Scan(ctx, &ps)
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
	db *bun.DB
}

// NewService returns a Service on db.
func NewService(db *bun.DB) *Service {
	return &Service{db: db}
}

// ByIDs returns the partners with ids, in no particular order; unknown ids are left out. It is
// the batch function behind the Lead.partner loader: one prepared statement for any number of ids.
func (s *Service) ByIDs(ctx context.Context, ids []string) ([]Partner, error) {
	var ps []Partner
	if len(ids) == 0 {
		return ps, nil
	}
	for _, id := range ids {
		if err := apperr.CheckID(id); err != nil {
			return nil, err
		}
	}
	ps = make([]Partner, 0, len(ids))
	// Partners change rarely and show beside browsed leads: a replica's lag is fine (db.Reader).
	err := db.QueryPrepared(ctx, db.Reader(ctx, s.db), `SELECT id, name, commission_rate::float8, verification_pass_rate::float8, created_at
		FROM partners WHERE id = ANY($1::uuid[])`, []any{ids}, func(rows pgx.Rows) error {
		var p Partner
		for rows.Next() {
			if err := rows.Scan(&p.ID, &p.Name, &p.CommissionRate, &p.VerificationPassRate, &p.CreatedAt); err != nil {
				return err
			}
			ps = append(ps, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("partners by ids: %w", err)
	}
	return ps, nil
}

// ForUser is ForUser on the service's database.
func (s *Service) ForUser(ctx context.Context, userID string) ([]Partner, error) {
	return ForUser(ctx, s.db, userID)
}
