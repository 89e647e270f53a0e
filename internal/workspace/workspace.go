// Package workspace manages buyers' workspaces and their members, and answers the one access
// question other domains ask: what role does this user have in this workspace?
package workspace

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/uptrace/bun"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/user"
)

// Roles inside a workspace.
const (
	RoleOwner  = "OWNER"
	RoleAdmin  = "ADMIN"
	RoleMember = "MEMBER"
)

// Workspace is a buyers' organisation.
type Workspace struct {
	ID        string    `bun:"id"`
	Name      string    `bun:"name"`
	CreatedAt time.Time `bun:"created_at"`
}

// Membership is a user's role in a workspace.
type Membership struct {
	Workspace Workspace
	Role      string
}

// Member is a workspace member as owners and admins see it.
type Member struct {
	WorkspaceID string `bun:"workspace_id"`
	UserID      string `bun:"user_id"`
	Email       string `bun:"email"`
	Role        string `bun:"role"`
}

// Service manages workspaces.
type Service struct {
	db          *bun.DB
	openBalance func(ctx context.Context, db bun.IDB, workspaceID string) error
}

// Options configure a Service.
type Options struct {
	// OpenBalanceFunc gives a new workspace its credit balance in the transaction that creates it
	// (credit.OpenBalance: credit owns the balances, and imports workspace for its access checks,
	// so it is passed in). Required by Create; nil makes Create fail.
	OpenBalanceFunc func(ctx context.Context, db bun.IDB, workspaceID string) error
}

// NewService returns a Service on db.
func NewService(db *bun.DB, o Options) *Service {
	return &Service{db: db, openBalance: o.OpenBalanceFunc}
}

// RoleOf returns userID's role in workspaceID, or FORBIDDEN when the user is not a member (or the
// workspace does not exist, which callers must not be able to tell apart). A malformed id is
// INVALID_INPUT.
func RoleOf(ctx context.Context, db bun.IDB, workspaceID, userID string) (string, error) {
	if err := apperr.CheckID(workspaceID); err != nil {
		return "", err
	}
	var role string
	err := db.NewRaw("SELECT role FROM workspace_members WHERE workspace_id = ? AND user_id = ?", workspaceID, userID).
		Scan(ctx, &role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", apperr.New(apperr.Forbidden, "you are not a member of this workspace").With("workspaceId", workspaceID)
	}
	if err != nil {
		return "", fmt.Errorf("role in workspace %s: %w", workspaceID, err)
	}
	return role, nil
}

// RequireRole returns the caller's role in workspaceID if it is one of roles (any role when none
// are given). Errors: FORBIDDEN, INVALID_INPUT.
func RequireRole(ctx context.Context, db bun.IDB, workspaceID, userID string, roles ...string) (string, error) {
	role, err := RoleOf(ctx, db, workspaceID, userID)
	if err != nil {
		return "", err
	}
	if len(roles) == 0 {
		return role, nil
	}
	for _, r := range roles {
		if r == role {
			return role, nil
		}
	}
	return "", apperr.New(apperr.Forbidden, "this needs the role %s in the workspace", strings.Join(roles, " or ")).
		With("workspaceId", workspaceID)
}

// RoleCheck is RequireRole on db as the audit log's access check (audit.RoleCheck).
func RoleCheck(db bun.IDB) func(ctx context.Context, workspaceID, userID string, roles ...string) error {
	return func(ctx context.Context, workspaceID, userID string, roles ...string) error {
		_, err := RequireRole(ctx, db, workspaceID, userID, roles...)
		return err
	}
}

// RequireMemberOrAdmin allows c when it holds one of roles in workspaceID (any role when none
// are given), or when it may use platform-admin access (which looks at any workspace for support,
// with an aal2 session unless MFA is optional). Errors: FORBIDDEN (reason MFA_REQUIRED for an
// admin without aal2 and without the role), INVALID_INPUT.
func RequireMemberOrAdmin(ctx context.Context, db bun.IDB, workspaceID string, c *auth.Caller, roles ...string) error {
	if err := apperr.CheckID(workspaceID); err != nil {
		return err
	}
	return c.MemberOrAdmin(func() error {
		_, err := RequireRole(ctx, db, workspaceID, c.UserID, roles...)
		return err
	})
}

// Create makes a workspace with the caller as OWNER and an empty credit balance.
// Errors: INVALID_INPUT for an empty or over-long name.
func (s *Service) Create(ctx context.Context, c *auth.Caller, name string) (Workspace, error) {
	name = strings.TrimSpace(name)
	if name == "" || len([]rune(name)) > 120 {
		return Workspace{}, apperr.New(apperr.InvalidInput, "a workspace name has 1 to 120 characters")
	}
	if s.openBalance == nil {
		return Workspace{}, errors.New("create workspace: the service has no OpenBalanceFunc")
	}
	var ws Workspace
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if err := tx.NewRaw("INSERT INTO workspaces (name, created_by) VALUES (?, ?) RETURNING id, name, created_at",
			name, c.UserID).Scan(ctx, &ws); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (?, ?, 'OWNER')`,
			ws.ID, c.UserID); err != nil {
			return err
		}
		if err := s.openBalance(ctx, tx, ws.ID); err != nil {
			return err
		}
		return audit.Record(ctx, tx, audit.Entry{
			ActorUserID: c.UserID, WorkspaceID: ws.ID, Action: "workspace.created",
			ResourceType: "workspace", ResourceID: ws.ID, New: map[string]any{"name": name},
		})
	})
	if err != nil {
		return Workspace{}, fmt.Errorf("create workspace: %w", err)
	}
	return ws, nil
}

// AddMember adds the user with email (inviting it if unknown) to a workspace, or changes the
// role of an existing member. Owners and admins may add ADMINs and MEMBERs; only owners may
// grant or take OWNER, and a workspace keeps at least one owner.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) AddMember(ctx context.Context, c *auth.Caller, workspaceID, email, role string) (Member, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if at := strings.IndexByte(email, '@'); at < 1 || at == len(email)-1 || strings.ContainsAny(email, " \t") {
		return Member{}, apperr.New(apperr.InvalidInput, "%q is not an e-mail address", email)
	}
	if role != RoleOwner && role != RoleAdmin && role != RoleMember {
		return Member{}, apperr.New(apperr.InvalidInput, "unknown role %q", role)
	}
	var m Member
	err := s.db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		// Only the workspace's owners and admins get to lock it (a stranger's call must not hold
		// up its purchases); the lock keeps concurrent role changes from removing the last owner,
		// and the role is read again under it.
		if _, err := RequireRole(ctx, tx, workspaceID, c.UserID, RoleOwner, RoleAdmin); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "SELECT 1 FROM workspaces WHERE id = ? FOR UPDATE", workspaceID); err != nil {
			return err
		}
		callerRole, err := RequireRole(ctx, tx, workspaceID, c.UserID, RoleOwner, RoleAdmin)
		if err != nil {
			return err
		}
		userID, err := user.EnsureByEmail(ctx, tx, email)
		if err != nil {
			return err
		}
		var oldRole string
		err = tx.NewRaw("SELECT role FROM workspace_members WHERE workspace_id = ? AND user_id = ?", workspaceID, userID).Scan(ctx, &oldRole)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if (role == RoleOwner || oldRole == RoleOwner) && callerRole != RoleOwner && oldRole != role {
			return apperr.New(apperr.Forbidden, "only owners grant or take the OWNER role")
		}
		m = Member{WorkspaceID: workspaceID, UserID: userID, Email: email, Role: role}
		if oldRole == role {
			return nil
		}
		if oldRole == RoleOwner {
			var owners int
			if err := tx.NewRaw("SELECT count(*) FROM workspace_members WHERE workspace_id = ? AND role = 'OWNER'", workspaceID).
				Scan(ctx, &owners); err != nil {
				return err
			}
			if owners <= 1 {
				return apperr.New(apperr.InvalidInput, "a workspace keeps at least one owner")
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO workspace_members (workspace_id, user_id, role) VALUES (?, ?, ?)
			ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = EXCLUDED.role`, workspaceID, userID, role); err != nil {
			return err
		}
		action, old := "workspace.member_added", any(nil)
		if oldRole != "" {
			action, old = "workspace.member_role_changed", map[string]any{"role": oldRole}
		}
		return audit.Record(ctx, tx, audit.Entry{
			ActorUserID: c.UserID, WorkspaceID: workspaceID, Action: action, ResourceType: "workspace_member",
			ResourceID: userID, Old: old, New: map[string]any{"role": role, "email": email},
		})
	})
	if err != nil {
		return Member{}, fmt.Errorf("add member to %s: %w", workspaceID, err)
	}
	return m, nil
}

// Memberships returns the workspaces userID belongs to, by name.
func (s *Service) Memberships(ctx context.Context, userID string) ([]Membership, error) {
	var rows []struct {
		Workspace `bun:",extend"`
		Role      string `bun:"role"`
	}
	err := s.db.NewRaw(`SELECT w.id, w.name, w.created_at, m.role FROM workspace_members m
		JOIN workspaces w ON w.id = m.workspace_id WHERE m.user_id = ? ORDER BY w.name, w.id`, userID).Scan(ctx, &rows)
	if err != nil {
		return nil, fmt.Errorf("memberships of %s: %w", userID, err)
	}
	out := make([]Membership, len(rows))
	for i, r := range rows {
		out[i] = Membership{Workspace: r.Workspace, Role: r.Role}
	}
	return out, nil
}
