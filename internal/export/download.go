package export

import (
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/db"
	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

// DownloadHandler serves GET /exports/{file}, file being "<id>.csv": the file of a completed
// export, streamed chunk by chunk from PostgreSQL (so any instance serves it, with one chunk in
// memory at a time) with Content-Disposition, to those who may see it (Get: its creator, its
// workspace's owners and admins, platform-admin access). The caller comes from the bearer token, which the server's
// authentication (the one /graphql uses) put in the request's context. Answers: 401 without a
// valid token; 404 for an export that does not exist, is not the caller's (also a security
// event) or has expired; 409 while it is not completed. Each download is audited.
func (s *Service) DownloadHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, apperr.MethodNotAllowed, "downloads are GET requests")
			return
		}
		ctx := r.Context()
		c := auth.CallerFrom(ctx)
		if c == nil || auth.AuthErrorFrom(ctx) != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="leadmarket"`)
			writeError(w, http.StatusUnauthorized, apperr.Unauthenticated, "sign in with a bearer token to download an export")
			return
		}
		id, ok := strings.CutSuffix(r.PathValue("file"), ".csv")
		if !ok || apperr.CheckID(id) != nil {
			writeError(w, http.StatusNotFound, apperr.NotFound, "no such export")
			return
		}
		e, allowed, err := s.visible(ctx, c, id)
		if err != nil {
			s.internalError(w, r, err)
			return
		}
		if e != nil && !allowed {
			if err := audit.RecordSecurity(ctx, s.db, audit.SecurityEvent{
				Kind: "access_denied", Risk: audit.RiskMedium, UserID: c.UserID, WorkspaceID: e.WorkspaceID,
				Details: map[string]any{"exportId": id, "path": r.URL.Path},
			}); err != nil {
				s.opts.Logger.ErrorContext(ctx, "record security event", "err", err)
			}
		}
		if e == nil || !allowed || !time.Now().Before(e.ExpiresAt) {
			writeError(w, http.StatusNotFound, apperr.NotFound, "no such export")
			return
		}
		if e.Status != StatusCompleted {
			writeError(w, http.StatusConflict, apperr.Conflict, "the export is "+strings.ToLower(e.Status)+", not completed yet")
			return
		}
		actor := audit.ActorUser
		if c.UserID != e.CreatedBy && c.AdminAccess() == nil {
			actor = audit.ActorPlatformAdmin
		}
		if err := audit.Record(ctx, s.db, audit.Entry{
			ActorUserID: c.UserID, ActorType: actor, WorkspaceID: e.WorkspaceID, Action: "export.downloaded",
			ResourceType: "export", ResourceID: id, Metadata: map[string]any{"rows": e.RowsDone, "bytes": e.Bytes},
		}); err != nil {
			s.internalError(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": e.FileName}))
		h.Set("Content-Length", strconv.FormatInt(e.Bytes, 10))
		h.Set("Cache-Control", "private, no-store")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return
		}
		// Binary results over the extended protocol: a chunk arrives as its bytes, not as hex.
		err = db.QueryPrepared(ctx, s.db, "SELECT data FROM export_chunks WHERE export_id = $1 ORDER BY seq", []any{id},
			func(rows pgx.Rows) error {
				for rows.Next() {
					if _, err := w.Write(rows.RawValues()[0]); err != nil {
						return err
					}
				}
				return rows.Err()
			})
		if err != nil {
			// The status is sent: cut the connection, so the client sees a broken download rather
			// than a short file.
			s.opts.Logger.ErrorContext(ctx, "export download", "err", err, "export_id", id,
				"request_id", reqinfo.From(ctx).RequestID)
			panic(http.ErrAbortHandler)
		}
	})
}

func (s *Service) internalError(w http.ResponseWriter, r *http.Request, err error) {
	id := reqinfo.From(r.Context()).RequestID
	s.opts.Logger.ErrorContext(r.Context(), "export download", "err", err, "request_id", id)
	writeError(w, http.StatusInternalServerError, apperr.Internal, "internal error")
}

// writeError answers with a JSON error shaped like GraphQL's, so clients read one format.
func writeError(w http.ResponseWriter, status int, code apperr.Code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"message": message, "extensions": map[string]any{"code": string(code)},
	}}})
}
