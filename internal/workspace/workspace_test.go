package workspace_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/workspace"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Run(m)) }

// A stranger's addWorkspaceMember is refused without taking the workspace's row lock: while a
// purchase holds its key-share lock on the workspace, the refusal still comes at once.
func TestAddMember_StrangerTakesNoLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.DB(t)
	ws, _ := dbtest.CreateWorkspace(t, db, dbtest.WorkspaceOpts{})
	stranger := dbtest.CreateUser(t, db, dbtest.UserOpts{})

	busy, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer func() { _ = busy.Rollback() }()
	_, err = busy.ExecContext(ctx, "SELECT 1 FROM workspaces WHERE id = ? FOR KEY SHARE", ws)
	require.NoError(t, err)

	callCtx, cancel := context.WithTimeout(auth.WithCaller(ctx, &auth.Caller{UserID: stranger.ID}), 3*time.Second)
	defer cancel()
	_, err = workspace.NewService(db, workspace.Options{}).AddMember(callCtx, &auth.Caller{UserID: stranger.ID}, ws, "someone@example.test", workspace.RoleMember)
	require.True(t, apperr.Is(err, apperr.Forbidden), "%v", err)
}
