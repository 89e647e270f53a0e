// Package user keeps Leadmarket's users: provisioned on first sight of a verified token, or
// invited by e-mail before they ever sign in.
package user

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/db"
)

// Store provisions and looks up users.
type Store struct {
	db bun.IDB
}

// NewStore returns a Store on db.
func NewStore(db bun.IDB) *Store { return &Store{db: db} }

// Provision returns the user with auth subject, creating it on first sight. A user invited by
// e-mail (no subject yet) is linked to the subject of the first token carrying that e-mail.
// Errors: FORBIDDEN when the e-mail already belongs to another subject.
func (s *Store) Provision(ctx context.Context, subject, email string) (string, bool, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	for attempt := 0; attempt < 3; attempt++ {
		var row struct {
			ID      string `bun:"id"`
			IsAdmin bool   `bun:"is_platform_admin"`
		}
		err := s.db.NewRaw("SELECT id, is_platform_admin FROM users WHERE auth_subject = ?", subject).Scan(ctx, &row)
		if err == nil {
			return row.ID, row.IsAdmin, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", false, fmt.Errorf("find user: %w", err)
		}
		err = s.db.NewRaw(`INSERT INTO users (auth_subject, email) VALUES (?, ?)
			ON CONFLICT (email) DO UPDATE SET auth_subject = EXCLUDED.auth_subject, updated_at = now()
			WHERE users.auth_subject IS NULL
			RETURNING id, is_platform_admin`, subject, email).Scan(ctx, &row)
		switch {
		case err == nil:
			return row.ID, row.IsAdmin, nil
		case errors.Is(err, sql.ErrNoRows):
			return "", false, apperr.New(apperr.Forbidden, "this e-mail belongs to another account")
		case db.IsUniqueViolation(err):
			continue // the same subject was provisioned concurrently: read it again
		default:
			return "", false, fmt.Errorf("provision user: %w", err)
		}
	}
	return "", false, fmt.Errorf("provision user %s: gave up after concurrent inserts", subject)
}

// EnsureByEmail returns the id of the user with email, inviting (creating) it when unknown.
func EnsureByEmail(ctx context.Context, db bun.IDB, email string) (string, error) {
	var id string
	err := db.NewRaw(`INSERT INTO users (email) VALUES (?)
		ON CONFLICT (email) DO UPDATE SET email = EXCLUDED.email RETURNING id`, email).Scan(ctx, &id)
	if err != nil {
		return "", fmt.Errorf("ensure user %s: %w", email, err)
	}
	return id, nil
}

// SubjectOf returns the auth subject (the tokens' sub) of the user with email; "" when there is
// no such user or it has not signed in yet.
func SubjectOf(ctx context.Context, db bun.IDB, email string) (string, error) {
	var subject *string
	err := db.NewRaw("SELECT auth_subject FROM users WHERE email = ?", strings.ToLower(strings.TrimSpace(email))).Scan(ctx, &subject)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && subject == nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("subject of %s: %w", email, err)
	}
	return *subject, nil
}

// SetPlatformAdmin sets or clears the platform-admin flag of the user with email, creating it.
func SetPlatformAdmin(ctx context.Context, db bun.IDB, email string, isAdmin bool) error {
	_, err := db.NewRaw(`INSERT INTO users (email, is_platform_admin) VALUES (?, ?)
		ON CONFLICT (email) DO UPDATE SET is_platform_admin = EXCLUDED.is_platform_admin, updated_at = now()`,
		strings.ToLower(strings.TrimSpace(email)), isAdmin).Exec(ctx)
	if err != nil {
		return fmt.Errorf("set platform admin %s: %w", email, err)
	}
	return nil
}

// User is a user as other users may see it: a workspace lead's assignee, say.
type User struct {
	ID              string `bun:"id"`
	Email           string `bun:"email"`
	IsPlatformAdmin bool   `bun:"is_platform_admin"`
}

// ByIDs returns the users with ids, in no particular order; unknown ids are left out. It is one
// statement for any number of ids (the batch behind a dataloader). Errors: INVALID_INPUT for a
// malformed id.
func ByIDs(ctx context.Context, db bun.IDB, ids []string) ([]User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	for _, id := range ids {
		if err := apperr.CheckID(id); err != nil {
			return nil, err
		}
	}
	us := make([]User, 0, len(ids))
	if err := db.NewRaw("SELECT id, email, is_platform_admin FROM users WHERE id IN (?)", bun.List(ids)).Scan(ctx, &us); err != nil {
		return nil, fmt.Errorf("users by ids: %w", err)
	}
	return us, nil
}
