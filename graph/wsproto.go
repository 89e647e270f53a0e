package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/leadmarket/leadmarket/graph/gqlhttp"
)

// Close codes of graphql-transport-ws (enisdenjo/graphql-ws PROTOCOL.md) that gqlgen does not
// send itself (it closes 1002 or 1000 instead).
const (
	closeInvalidMessage      = 4400
	closeUnauthorized        = 4401
	closeForbidden           = 4403
	closeInitTimeout         = 4408
	closeSubscriberExists    = 4409
	closeTooManyInitRequests = 4429
)

// wsLimits bound one socket.
type wsLimits struct {
	initTimeout      time.Duration
	maxSubscriptions int
}

// protocolImplementation accepts WebSockets through coder/websocket and puts protocolConn in
// front of gqlgen's reader.
type protocolImplementation struct {
	inner  transport.CoderWebsocketImplementation
	limits wsLimits
}

// wsHolderKey carries the socket's protocolConn to InitFunc (set by withWSHolder on the upgrade
// request, filled by Accept).
type wsHolderKey struct{}

type wsHolder struct{ conn *protocolConn }

func withWSHolder(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			r = r.WithContext(context.WithValue(r.Context(), wsHolderKey{}, &wsHolder{}))
		}
		next.ServeHTTP(w, r)
	})
}

func wsConnFrom(ctx context.Context) *protocolConn {
	if h, ok := ctx.Value(wsHolderKey{}).(*wsHolder); ok {
		return h.conn
	}
	return nil
}

// Accept implements transport.WebsocketImplementation.
func (p protocolImplementation) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := p.inner.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	pc := &protocolConn{WebsocketConn: conn, limits: p.limits, active: map[string]bool{},
		started: map[string]bool{}, refused: map[string]bool{}}
	if h, ok := r.Context().Value(wsHolderKey{}).(*wsHolder); ok {
		h.conn = pc
	}
	if p.limits.initTimeout > 0 {
		pc.initTimer = time.AfterFunc(p.limits.initTimeout, func() {
			_ = pc.closeWith(closeInitTimeout, "Connection initialisation timeout")
		})
	}
	return pc, nil
}

// protocolConn reads each client message before gqlgen does and closes the socket with the
// protocol's codes where gqlgen would not: 4400 for a message that is not one, 4401 for a
// subscribe before connection_ack, 4408 when no connection_init came in time, 4409 for a
// subscribe whose id is in use, 4429 for a second connection_init. Over WS_MAX_SUBSCRIPTIONS a
// subscribe gets an error TOO_MANY_SUBSCRIPTIONS and the socket stays.
type protocolConn struct {
	transport.WebsocketConn
	limits    wsLimits
	initTimer *time.Timer

	mu     sync.Mutex
	inited bool
	acked  bool
	closed bool
	active map[string]bool
	// started holds the operations that sent a result; refused those whose refusal was sent as
	// an error message (their complete is dropped: error ends an operation).
	started map[string]bool
	refused map[string]bool
	// onClose runs once when the socket closes (InitFunc's release of its connection slot).
	onClose []func()
}

type wsIncoming struct {
	ID      *string         `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

func (c *protocolConn) transportWS() bool { return c.Subprotocol() == "graphql-transport-ws" }

// NextReader implements transport.WebsocketConn.
func (c *protocolConn) NextReader() (int, io.Reader, error) {
	for {
		mt, r, err := c.WebsocketConn.NextReader()
		if err != nil || !c.transportWS() {
			if c.initTimer != nil && err == nil {
				c.initTimer.Stop()
			}
			return mt, r, err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return mt, nil, err
		}
		var m wsIncoming
		if json.Unmarshal(data, &m) != nil || m.Type == "" {
			return 0, nil, c.closeWith(closeInvalidMessage, "Invalid message received")
		}
		c.mu.Lock()
		switch m.Type {
		case "connection_init":
			if c.inited {
				c.mu.Unlock()
				return 0, nil, c.closeWith(closeTooManyInitRequests, "Too many initialisation requests")
			}
			c.inited = true
			if c.initTimer != nil {
				c.initTimer.Stop()
			}
		case "subscribe":
			if m.ID == nil || *m.ID == "" || len(m.Payload) == 0 {
				c.mu.Unlock()
				return 0, nil, c.closeWith(closeInvalidMessage, "Invalid message received")
			}
			if !c.acked {
				c.mu.Unlock()
				return 0, nil, c.closeWith(closeUnauthorized, "Unauthorized")
			}
			if c.active[*m.ID] {
				c.mu.Unlock()
				return 0, nil, c.closeWith(closeSubscriberExists, "Subscriber for "+*m.ID+" already exists")
			}
			if c.limits.maxSubscriptions > 0 && len(c.active) >= c.limits.maxSubscriptions {
				c.mu.Unlock()
				_ = c.WebsocketConn.WriteJSON(map[string]any{"id": *m.ID, "type": "error", "payload": []map[string]any{{
					"message": "this socket has its most subscriptions open; complete one first", "extensions": map[string]any{"code": "TOO_MANY_SUBSCRIPTIONS"},
				}}})
				continue
			}
			if gerr := gqlhttp.CheckJSONText(m.Payload); gerr != nil {
				// As over HTTP: a string that is not UTF-8 is refused, not turned into U+FFFD.
				c.mu.Unlock()
				_ = c.WebsocketConn.WriteJSON(map[string]any{"id": *m.ID, "type": "error", "payload": gqlerror.List{gerr}})
				continue
			}
			c.active[*m.ID] = true
		case "complete":
			if m.ID != nil {
				delete(c.active, *m.ID)
			}
		case "ping", "pong":
		default:
			c.mu.Unlock()
			return 0, nil, c.closeWith(closeInvalidMessage, "Invalid message received")
		}
		c.mu.Unlock()
		return mt, bytes.NewReader(data), nil
	}
}

// WriteJSON implements transport.WebsocketConn, following what the server tells the client. An
// operation refused before its first result (gqlgen sends the resolver's error as a next with no
// data) is sent as the protocol's error message, with the errors' extensions.code.
func (c *protocolConn) WriteJSON(v any) error {
	if !c.transportWS() {
		return c.WebsocketConn.WriteJSON(v)
	}
	id, typ, payload, ok := outgoing(v)
	if !ok {
		// Not gqlgen's message struct: read what it encodes to.
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var m wsIncoming
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		if m.ID != nil {
			id = *m.ID
		}
		typ, payload, v = m.Type, m.Payload, json.RawMessage(b)
	}
	if id == "" {
		if typ == "connection_ack" {
			c.mu.Lock()
			c.acked = true
			c.mu.Unlock()
		}
		return c.WebsocketConn.WriteJSON(v)
	}
	c.mu.Lock()
	switch typ {
	case "next":
		if !c.started[id] {
			var res struct {
				Data   json.RawMessage   `json:"data"`
				Errors []json.RawMessage `json:"errors"`
			}
			if json.Unmarshal(payload, &res) == nil && len(res.Errors) > 0 && (len(res.Data) == 0 || string(res.Data) == "null") {
				c.refused[id] = true
				delete(c.active, id)
				c.mu.Unlock()
				return c.WebsocketConn.WriteJSON(map[string]any{"id": id, "type": "error", "payload": res.Errors})
			}
		}
		c.started[id] = true
	case "complete", "error":
		delete(c.active, id)
		delete(c.started, id)
		if c.refused[id] {
			delete(c.refused, id)
			c.mu.Unlock()
			if typ == "complete" {
				return nil
			}
			return c.WebsocketConn.WriteJSON(v)
		}
	}
	c.mu.Unlock()
	return c.WebsocketConn.WriteJSON(v)
}

// outgoing reads the id, type and payload of a message gqlgen sends (a struct with the string
// fields ID and Type and the json.RawMessage Payload) without encoding it, so each message is
// encoded once, by the socket; ok is false for any other value.
func outgoing(v any) (id, typ string, payload json.RawMessage, ok bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return "", "", nil, false
	}
	idf, typf, pf := rv.FieldByName("ID"), rv.FieldByName("Type"), rv.FieldByName("Payload")
	if !idf.IsValid() || idf.Kind() != reflect.String || !typf.IsValid() || typf.Kind() != reflect.String ||
		!pf.IsValid() || !pf.CanInterface() {
		return "", "", nil, false
	}
	payload, ok = pf.Interface().(json.RawMessage)
	return idf.String(), typf.String(), payload, ok
}

// WriteClose implements transport.WebsocketConn: the first close code wins, so gqlgen's 1002
// after one of ours changes nothing.
func (c *protocolConn) WriteClose(code int, msg string) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	fns := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	for _, f := range fns {
		f()
	}
	return c.WebsocketConn.WriteClose(code, msg)
}

// Close implements transport.WebsocketConn.
func (c *protocolConn) Close() error {
	c.mu.Lock()
	fns := c.onClose
	c.onClose = nil
	c.mu.Unlock()
	for _, f := range fns {
		f()
	}
	return c.WebsocketConn.Close()
}

// closeWith closes the socket with code and returns the error gqlgen's reader then sees.
func (c *protocolConn) closeWith(code int, reason string) error {
	_ = c.WriteClose(code, reason)
	return transport.ErrWebsocketClosed
}

// SetReadLimit passes gqlgen's read limit on.
func (c *protocolConn) SetReadLimit(n int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(n)
	}
}

// SetReadDeadline passes gqlgen's pong deadline on.
func (c *protocolConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

// addOnClose runs f when the socket closes.
func (c *protocolConn) addOnClose(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onClose = append(c.onClose, f)
}

// WSOptions bound the WebSockets. Zero fields take their defaults.
type WSOptions struct {
	// InitTimeout is how long a socket may wait before its connection_init (WS_INIT_TIMEOUT);
	// then it is closed 4408. Default 3 s.
	InitTimeout time.Duration
	// MaxSubscriptions per socket (WS_MAX_SUBSCRIPTIONS); the next subscribe gets an error
	// TOO_MANY_SUBSCRIPTIONS. Default 25.
	MaxSubscriptions int
	// MaxConnectionsPerUser is how many sockets one user may hold on this instance
	// (WS_MAX_CONNECTIONS_PER_USER); the next is closed 4429. Default 10.
	MaxConnectionsPerUser int
	// PingInterval is the keep-alive ping's interval. Default 15 s.
	PingInterval time.Duration
}

func (o WSOptions) withDefaults() WSOptions {
	if o.InitTimeout <= 0 {
		o.InitTimeout = 3 * time.Second
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = 25
	}
	if o.MaxConnectionsPerUser <= 0 {
		o.MaxConnectionsPerUser = 10
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 15 * time.Second
	}
	return o
}

// socketCounter counts each user's open sockets.
type socketCounter struct {
	mu     sync.Mutex
	max    int
	byUser map[string]int
}

func newSocketCounter(max int) *socketCounter {
	return &socketCounter{max: max, byUser: map[string]int{}}
}

// take reserves a socket for userID; false when the user holds the most already.
func (s *socketCounter) take(userID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byUser[userID] >= s.max {
		return false
	}
	s.byUser[userID]++
	return true
}

func (s *socketCounter) release(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byUser[userID]--; s.byUser[userID] <= 0 {
		delete(s.byUser, userID)
	}
}
