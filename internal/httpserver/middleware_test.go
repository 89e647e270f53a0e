package httpserver

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/reqinfo"
)

// lockedBuffer is a log sink the server's handler goroutine and the test may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The request info is built once, before the GraphQL layer knows the operation; the access log
// line still names the operation that layer noted.
func TestAccessLogNamesTheNotedOperation(t *testing.T) {
	var logs lockedBuffer
	var seen reqinfo.Info
	srv := New(Options{
		Logger: slog.New(slog.NewJSONHandler(&logs, nil)),
		GraphQL: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = reqinfo.From(r.Context())
			reqinfo.NoteOperation(r.Context(), "BrowseLeads")
			w.WriteHeader(http.StatusOK)
		}),
		Authenticator: noAuth{},
	})
	r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader("{}"))
	r.Header.Set("X-Request-Id", "req-42")
	r.Header.Set("User-Agent", "test-agent")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, reqinfo.Info{IP: "192.0.2.1", UserAgent: "test-agent", RequestID: "req-42"}, seen)

	var line struct {
		Msg       string `json:"msg"`
		RequestID string `json:"request_id"`
		Operation string `json:"operation"`
	}
	require.NoError(t, json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line), "%s", logs.String())
	require.Equal(t, "request", line.Msg)
	require.Equal(t, "req-42", line.RequestID)
	require.Equal(t, "BrowseLeads", line.Operation)
}
