package seed_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/page"
	"github.com/leadmarket/leadmarket/internal/seed"
)

// Every demo partner gets one completed upload with rejections of several kinds, through the
// real upload and job; seeding again adds none.
func TestDemoUploads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.FreshDB(t)
	res, err := seed.Demo(ctx, db, seed.Options{Leads: 50})
	require.NoError(t, err)
	queue, err := jobs.NewQueue(db.DB)
	require.NoError(t, err)
	svc := ingest.NewService(db, queue, ingest.ServiceOptions{})

	made, err := seed.DemoUploads(ctx, svc, res.Users)
	require.NoError(t, err)
	partners := 0
	for _, u := range res.Users {
		if u.Role != seed.RolePartnerMember {
			continue
		}
		partners++
		c := &auth.Caller{UserID: u.UserID, Email: u.Email}
		list, err := svc.List(ctx, c, u.PartnerID, page.Args{})
		require.NoError(t, err)
		require.Len(t, list.Items, 1)
		up := list.Items[0]
		require.Equal(t, ingest.StatusCompleted, up.Status)
		require.Equal(t, seed.DemoUploadFile, up.FileName)
		require.Equal(t, 30, up.RowsTotal)
		require.Equal(t, 24, up.AcceptedCount)
		require.Equal(t, 2, up.DuplicateCount)
		require.Equal(t, 4, up.InvalidCount)
		rejs, err := svc.Rejections(ctx, c, up.ID, "", page.Args{})
		require.NoError(t, err)
		reasons := map[ingest.Reason]int{}
		for _, r := range rejs.Items {
			reasons[r.Reason]++
		}
		require.Equal(t, map[ingest.Reason]int{ingest.ReasonDuplicateInFile: 2, ingest.ReasonInvalidEmail: 1,
			ingest.ReasonMissingFields: 1, ingest.ReasonInvalidValue: 2}, reasons)
	}
	require.Equal(t, partners, made)
	require.Positive(t, made)

	again, err := seed.DemoUploads(ctx, svc, res.Users)
	require.NoError(t, err)
	require.Zero(t, again, "seeding again adds no upload")
}
