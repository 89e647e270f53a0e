package reqinfo_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

func TestFromWithoutInfoIsZero(t *testing.T) {
	t.Parallel()
	require.Equal(t, reqinfo.Info{}, reqinfo.From(context.Background()))
}

func TestWithOperationLeavesTheParentAlone(t *testing.T) {
	t.Parallel()
	parent := reqinfo.With(context.Background(), reqinfo.Info{IP: "203.0.113.7", UserAgent: "ua", RequestID: "req-1"})
	var wg sync.WaitGroup
	for _, op := range []string{"A", "B", "C"} {
		wg.Go(func() {
			child := reqinfo.WithOperation(parent, op)
			assert.Equal(t, reqinfo.Info{IP: "203.0.113.7", UserAgent: "ua", RequestID: "req-1", Operation: op}, reqinfo.From(child))
		})
	}
	wg.Wait()
	require.Empty(t, reqinfo.From(parent).Operation)
}

func TestAccessLogGetsTheNotedOperation(t *testing.T) {
	t.Parallel()
	reqinfo.NoteOperation(context.Background(), "Ignored") // no access log: nothing to do
	ctx, log := reqinfo.WithAccessLog(context.Background())
	require.Empty(t, log.Operation())
	reqinfo.NoteOperation(reqinfo.WithOperation(ctx, "Derived"), "Browse")
	require.Equal(t, "Browse", log.Operation(), "derived contexts reach the same access log")
}

func TestAccessLogGetsTheNotedUser(t *testing.T) {
	t.Parallel()
	reqinfo.NoteUser(context.Background(), "ignored") // no access log: nothing to do
	ctx, log := reqinfo.WithAccessLog(context.Background())
	require.Empty(t, log.UserID())
	reqinfo.NoteUser(reqinfo.WithOperation(ctx, "Derived"), "user-1")
	require.Equal(t, "user-1", log.UserID(), "derived contexts reach the same access log")
}
