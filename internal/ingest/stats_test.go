package ingest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/dbtest"
	"github.com/leadmarket/leadmarket/internal/ingest"
)

// A partner's stats: its leads (through internal/lead), its uploads and rejected rows by reason
// (dry runs left out), and the verification pass rate once a lead is verified.
func TestPartnerStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{BatchRows: 4})
	ctx := context.Background()
	s := e.supplier()
	st, err := e.svc.Stats(ctx, s.Caller, s.PartnerID)
	require.NoError(t, err)
	require.Zero(t, st.LeadsTotal)
	require.Nil(t, st.VerificationPassRate, "null until a lead is verified")
	require.Len(t, st.RejectionsByReason, len(ingest.Reasons()), "every reason listed")

	u := e.process(s, e.upload(s, mixedFile(20, "st"), ingest.UploadInput{}).ID)
	e.process(s, e.upload(s, mixedFile(20, "dry"), ingest.UploadInput{DryRun: true}).ID)
	e.upload(s, header, ingest.UploadInput{}) // FAILED: counted as an upload, no rows
	dbtest.CreateLead(t, e.db, dbtest.LeadOpts{PartnerID: s.PartnerID, VerificationStatus: "VALID"})
	dbtest.CreateLead(t, e.db, dbtest.LeadOpts{PartnerID: s.PartnerID, VerificationStatus: "INVALID"})
	dbtest.CreateLead(t, e.db, dbtest.LeadOpts{PartnerID: s.PartnerID, VerificationStatus: "VALID", Status: "INACTIVE"})

	st, err = e.svc.Stats(ctx, s.Caller, s.PartnerID)
	require.NoError(t, err)
	require.EqualValues(t, u.AcceptedCount+3, st.LeadsTotal)
	require.EqualValues(t, u.AcceptedCount+1, st.LeadsActive, "not INVALID, not INACTIVE")
	require.Zero(t, st.LeadsSold)
	require.EqualValues(t, 2, st.Uploads)
	require.EqualValues(t, u.DuplicateCount+u.InvalidCount, st.RowsRejected)
	byReason := map[ingest.Reason]int64{}
	for _, c := range st.RejectionsByReason {
		byReason[c.Reason] = c.Count
	}
	require.EqualValues(t, u.InvalidCount, byReason[ingest.ReasonInvalidEmail])
	require.EqualValues(t, u.DuplicateCount, byReason[ingest.ReasonDuplicateInFile])
	require.NotNil(t, st.VerificationPassRate)
	require.InDelta(t, 2.0/3.0, *st.VerificationPassRate, 1e-9)
}

// The hourly clean-up deletes the rejections of uploads older than UPLOAD_RETENTION; the upload
// and its counts stay, and its download is no longer offered.
func TestPurgeRejections(t *testing.T) {
	t.Parallel()
	e := newEnv(t, ingest.ServiceOptions{})
	ctx := context.Background()
	s := e.supplier()
	old := e.process(s, e.upload(s, mixedFile(20, "old"), ingest.UploadInput{}).ID)
	recent := e.process(s, e.upload(s, mixedFile(20, "new"), ingest.UploadInput{}).ID)
	_, err := e.db.ExecContext(ctx, "UPDATE lead_uploads SET created_at = now() - interval '91 days' WHERE id = ?", old.ID)
	require.NoError(t, err)
	n, err := e.svc.PurgeRejections(ctx)
	require.NoError(t, err)
	require.EqualValues(t, old.DuplicateCount+old.InvalidCount, n)
	require.Empty(t, e.rejections(s, old.ID))
	require.Len(t, e.rejections(s, recent.ID), recent.DuplicateCount+recent.InvalidCount)
	after := e.get(s, old.ID)
	require.Equal(t, counts(old), counts(after))
	require.Empty(t, after.RejectionsCSVPath())
	require.NotEmpty(t, e.get(s, recent.ID).RejectionsCSVPath())
	n, err = e.svc.PurgeRejections(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	st, err := e.svc.Stats(ctx, s.Caller, s.PartnerID)
	require.NoError(t, err)
	require.EqualValues(t, old.DuplicateCount+old.InvalidCount+recent.DuplicateCount+recent.InvalidCount, st.RowsRejected,
		"the counts outlive the rejections")
}
