package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/uptrace/bun/dialect/pgdialect"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/csvx"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

// RejectionsCSVRoute is the route of the rejections download, served by RejectionsCSVHandler
// behind the bearer-token authentication of the API.
const RejectionsCSVRoute = "GET /partners/uploads/{id}/rejections.csv"

// RejectionsCSVHandler serves RejectionsCSVRoute: an upload's rejected rows as CSV, streamed
// from PostgreSQL in row order (row_number, reason, field, detail, then the file's own columns
// in its order), every cell through csvx (formula cells neutralised), with a UTF-8 byte-order
// mark so that Excel reads accents right. 401 without a valid token; 404 for an upload the
// caller may not see, as for one that does not exist (never 403: an upload's existence is not
// disclosed).
func (s *Service) RejectionsCSVHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		c := auth.CallerFrom(ctx)
		if c == nil || auth.AuthErrorFrom(ctx) != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="leadmarket"`)
			writeError(w, http.StatusUnauthorized, apperr.Unauthenticated, "send a valid bearer token")
			return
		}
		id := r.PathValue("id")
		u, err := s.visible(ctx, c, id)
		if apperr.Is(err, apperr.InvalidInput) || (err == nil && u == nil) {
			writeError(w, http.StatusNotFound, apperr.NotFound, "no such upload")
			return
		}
		if err != nil {
			s.internalError(ctx, w, err)
			return
		}
		if u.RejectionsPurged {
			writeError(w, http.StatusGone, apperr.NotFound, "this upload's rejections were deleted after the retention period")
			return
		}
		if err := s.writeRejectionsCSV(ctx, w, u); err != nil {
			s.internalError(ctx, w, err)
		}
	})
}

// writeRejectionsCSV streams u's rejections. Once the first byte is out, a failure can no longer
// change the status: the connection is cut (http.ErrAbortHandler) so the client sees a broken
// download, not a complete-looking short file.
func (s *Service) writeRejectionsCSV(ctx context.Context, w http.ResponseWriter, u *Upload) error {
	var names []string
	if err := s.db.NewRaw("SELECT header FROM lead_uploads WHERE id = ?", u.ID).Scan(ctx, pgdialect.Array(&names)); err != nil {
		return err
	}
	h, err := NewHeader(names)
	if err != nil {
		// A failed upload's header may be one that was refused; its download is then the
		// rejection columns alone (a failed file has no rejected rows).
		h = &Header{}
	}
	started := false
	out := csvx.NewWriter(w, csvx.Options{BOM: true})
	start := func() error {
		if started {
			return nil
		}
		started = true
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="rejections-`+u.ID+`.csv"`)
		w.Header().Set("Cache-Control", "private, no-store")
		return out.Write(RejectionsCSVHeader(h))
	}
	var buf []string
	err = db.QueryPrepared(ctx, s.db, `SELECT row_number, reason, field, detail, raw FROM lead_rejections
		WHERE upload_id = $1 ORDER BY row_number`, []any{uuid.MustParse(u.ID)}, func(rows pgx.Rows) error {
		for rows.Next() {
			var rej Rejection
			var raw []byte
			var reason string
			if err := rows.Scan(&rej.RowNumber, &reason, &rej.Field, &rej.Detail, &raw); err != nil {
				return err
			}
			rej.Reason = Reason(reason)
			m := map[string]string{}
			if err := json.Unmarshal(raw, &m); err != nil {
				return err
			}
			rej.Raw = h.RawValues(m)
			if err := start(); err != nil {
				return err
			}
			buf = RejectionsCSVRecord(rej, buf)
			if err := out.Write(buf); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		if err = start(); err == nil {
			err = out.Flush()
		}
	}
	if err != nil && started {
		s.opts.Logger.ErrorContext(ctx, "rejections download cut short", "upload", u.ID, "err", err,
			"request_id", reqinfo.From(ctx).RequestID)
		panic(http.ErrAbortHandler)
	}
	return err
}

func (s *Service) internalError(ctx context.Context, w http.ResponseWriter, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	id := reqinfo.From(ctx).RequestID
	s.opts.Logger.ErrorContext(ctx, "rejections download", "err", err, "request_id", id)
	writeError(w, http.StatusInternalServerError, apperr.Internal, "internal error")
}

// writeError answers with one error in the shape of the API's (errors[].extensions.code).
func writeError(w http.ResponseWriter, status int, code apperr.Code, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"message": msg, "extensions": map[string]any{"code": string(code)},
	}}})
}
