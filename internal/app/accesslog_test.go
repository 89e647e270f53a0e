package app_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/app"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// syncBuffer is a log sink shared by the handler and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// An HTTP request's access log line names the GraphQL operation it ran, although the request
// info is fixed before the operation is parsed.
func TestAccessLogNamesTheOperation(t *testing.T) {
	t.Parallel()
	cfg, err := config.FromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"ENV": "test", "JWT_SECRET": testSecret}[k]
		return v, ok
	})
	require.NoError(t, err)
	var logs syncBuffer
	h := app.New(cfg, dbtest.DB(t), slog.New(slog.NewJSONHandler(&logs, nil))).Handler()
	r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"query WhoAmI { __typename }"}`))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	var operations []string
	for line := range strings.Lines(logs.String()) {
		var l struct {
			Msg       string `json:"msg"`
			Operation string `json:"operation"`
		}
		require.NoError(t, json.Unmarshal([]byte(line), &l), line)
		if l.Msg == "request" {
			operations = append(operations, l.Operation)
		}
	}
	require.Equal(t, []string{"WhoAmI"}, operations, logs.String())
}
