// Package gqlhttp is the GraphQL-over-HTTP side of Leadmarket's GraphQL server: the checks a
// request passes before any GraphQL work (Handler), the GET and JSON POST transport (Transport),
// and the query guardrails and rate limiter that refuse an operation before it costs anything
// (guard.go, ratelimit.go). It knows gqlgen's handler API, not the schema: graph assembles the
// server (graph.NewHandler) and passes in what needs the generated code, such as connection costs
// (ConnectionCost).
package gqlhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/metrics"
)

// GraphQL over HTTP, as the GraphQL-over-HTTP specification (graphql.github.io/graphql-over-http)
// says:
//
//   - POST with Content-Type application/json, or GET with the parameters in the query string
//     (queries only: a mutation over GET is refused with 405 before it runs). Multipart POSTs
//     (file uploads) go to gqlgen's multipart transport. Any other content type gets 415, which
//     is also how form-encoded and text/plain POSTs (the CSRF shapes) are refused.
//   - The response is application/graphql-response+json or application/json, whichever the
//     Accept header prefers (application/json when it is absent or a wildcard); an Accept that
//     allows neither gets 406.
//   - Status codes: a request that is not well formed (bad JSON, a batch, no query) gets 400.
//     A request error (parse, validation, cost limits; no data) gets 400 under
//     application/graphql-response+json and 200 under application/json. Anything that executed
//     gets 200. Some refusals have their own status under both: 429 (RATE_LIMITED), 405
//     (METHOD_NOT_ALLOWED), 413 (DOCUMENT_TOO_LARGE, REQUEST_TOO_LARGE).
//   - CSRF: a GET or multipart request runs only with a header a browser cannot send cross-site
//     without a CORS preflight: GraphQL-Preflight (Hot Chocolate), Apollo-Require-Preflight or
//     X-Apollo-Operation-Name (Apollo), or a Content-Type other than the three "simple" ones.
//
// JSON array batching is off: a batch is refused with 400 BATCHING_NOT_SUPPORTED.

// Media types of GraphQL responses.
const (
	mediaGraphQLResponse = "application/graphql-response+json"
	mediaJSON            = "application/json"
)

// preflightHeaders are the headers that make a GET or multipart request safe from CSRF: a
// browser sends them cross-origin only after a CORS preflight, which the CORS allow-list decides.
var preflightHeaders = []string{"GraphQL-Preflight", "Apollo-Require-Preflight", "X-Apollo-Operation-Name"}

// exchange is the HTTP side of one GraphQL request, for the extensions that answer in HTTP terms
// (a status, RateLimit headers). It is in the context of every HTTP request Handler passes on; a
// WebSocket operation has none.
type exchange struct {
	method string
	// mediaType is the negotiated response media type.
	mediaType string
	// header is the response's header, written before the status.
	header http.Header
	// status, when set, is the response's status whatever else happens (429, 405, 413).
	status int
	// metrics counts the refusals Transport answers itself; nil counts nothing.
	metrics *metrics.Metrics
}

type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

// refuse sets the exchange's status; the first refusal's status wins.
func (ex *exchange) refuse(status int) {
	if ex != nil && ex.status == 0 {
		ex.status = status
	}
}

// exchangeWriter applies the exchange's status to transports that choose their own (gqlgen's
// multipart transport).
type exchangeWriter struct {
	http.ResponseWriter
	ex      *exchange
	written bool
}

func (w *exchangeWriter) WriteHeader(code int) {
	if w.written {
		return
	}
	w.written = true
	if w.ex.status != 0 {
		code = w.ex.status
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *exchangeWriter) Write(b []byte) (int, error) {
	if !w.written {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *exchangeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Options configure Handler.
type Options struct {
	// MaxUploadBytes is the largest multipart (upload) request body (MAX_UPLOAD_BYTES): one
	// announced larger is refused with 413 before it is read, and one that turns out larger
	// while it is read (a chunked body) is cut off and answered 413 too. gqlgen's multipart
	// transport must be given the same limit (its own refusal is a JSON error with status 200).
	// Zero: no limit of Handler's own.
	MaxUploadBytes int64
	// Metrics counts the requests Handler and Transport refuse before GraphQL sees them
	// (graphql_errors_total, and graphql_guard_rejections_total{rule="body_size"} for a body over
	// its limit); the operations themselves are counted by the Metrics extension. Default nil.
	Metrics *metrics.Metrics
}

// Handler checks what GraphQL over HTTP requires of a request before any GraphQL work, then
// hands it to srv (gqlgen's server, with Transport among its transports) with an exchange in its
// context. WebSocket upgrades go to srv unchecked: its WebSocket transport checks the Origin.
func Handler(srv http.Handler, o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serveHTTP(srv, o, w, r) })
}

func serveHTTP(srv http.Handler, o Options, w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		srv.ServeHTTP(w, r)
		return
	}
	if r.Header.Get("Upgrade") != "" {
		// Another protocol offered (h2c, say) is declined, as HTTP/1.1 allows: the request is
		// served as it is, not handed to the WebSocket transport, which takes any Upgrade.
		r = r.Clone(r.Context())
		r.Header.Del("Upgrade")
	}
	mediaType, ok := negotiateMediaType(r.Header.Values("Accept"))
	if !ok {
		countHTTPRefusal(o.Metrics, apperr.NotAcceptable)
		writeHTTPError(w, mediaJSON, http.StatusNotAcceptable, apperr.NotAcceptable,
			"the Accept header allows neither "+mediaGraphQLResponse+" nor "+mediaJSON)
		return
	}
	contentType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch r.Method {
	case http.MethodGet:
		if !preflighted(r, contentType) {
			countHTTPRefusal(o.Metrics, apperr.CSRFPreflightRequired)
			writeCSRFRefusal(w, mediaType)
			return
		}
	case http.MethodPost:
		switch contentType {
		case mediaJSON:
		case "multipart/form-data":
			if !preflighted(r, contentType) {
				countHTTPRefusal(o.Metrics, apperr.CSRFPreflightRequired)
				writeCSRFRefusal(w, mediaType)
				return
			}
			if o.MaxUploadBytes > 0 {
				if r.ContentLength > o.MaxUploadBytes {
					countHTTPRefusal(o.Metrics, apperr.RequestTooLarge)
					writeUploadTooLarge(w, mediaType, o.MaxUploadBytes)
					return
				}
				w, r = limitUpload(w, r, mediaType, o.MaxUploadBytes, o.Metrics)
			}
		default:
			countHTTPRefusal(o.Metrics, apperr.UnsupportedMediaType)
			writeHTTPError(w, mediaType, http.StatusUnsupportedMediaType, apperr.UnsupportedMediaType,
				"send the request as "+mediaJSON+" (or multipart/form-data for uploads)")
			return
		}
	case http.MethodOptions:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		countHTTPRefusal(o.Metrics, apperr.MethodNotAllowed)
		writeHTTPError(w, mediaType, http.StatusMethodNotAllowed, apperr.MethodNotAllowed, "use POST, or GET for queries")
		return
	}
	ex := &exchange{method: r.Method, mediaType: mediaType, header: w.Header(), metrics: o.Metrics}
	srv.ServeHTTP(&exchangeWriter{ResponseWriter: w, ex: ex}, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
}

// limitUpload bounds a multipart request's body to limit bytes. When the body turns out larger,
// reading it fails (http.MaxBytesReader) and the response becomes a 413 REQUEST_TOO_LARGE,
// whatever the multipart transport then writes. A body of unknown length (chunked) is announced
// to the transport as limit bytes long: gqlgen keeps a file in memory when the request's
// ContentLength is below its MaxMemory, which -1 always is, so it would buffer up to the whole
// limit in memory instead of a temporary file.
func limitUpload(w http.ResponseWriter, r *http.Request, mediaType string, limit int64, m *metrics.Metrics) (http.ResponseWriter, *http.Request) {
	lw := &uploadLimitWriter{ResponseWriter: w, mediaType: mediaType, limit: limit, metrics: m}
	r = r.WithContext(r.Context())
	r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit), over: &lw.over}
	if r.ContentLength < 0 {
		r.ContentLength = limit
	}
	return lw, r
}

// limitedBody notes when its limit was passed.
type limitedBody struct {
	io.ReadCloser
	over *bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		*b.over = true
	}
	return n, err
}

// uploadLimitWriter answers 413 in place of what the transport writes once the body went over
// the limit.
type uploadLimitWriter struct {
	http.ResponseWriter
	mediaType string
	limit     int64
	over      bool
	refused   bool
	metrics   *metrics.Metrics
}

func (w *uploadLimitWriter) refuse() {
	if !w.refused {
		w.refused = true
		countHTTPRefusal(w.metrics, apperr.RequestTooLarge)
		writeUploadTooLarge(w.ResponseWriter, w.mediaType, w.limit)
	}
}

func (w *uploadLimitWriter) WriteHeader(code int) {
	if w.over {
		w.refuse()
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *uploadLimitWriter) Write(b []byte) (int, error) {
	if w.over {
		w.refuse()
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *uploadLimitWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func writeUploadTooLarge(w http.ResponseWriter, mediaType string, limit int64) {
	writeHTTPError(w, mediaType, http.StatusRequestEntityTooLarge, apperr.RequestTooLarge,
		fmt.Sprintf("the upload is larger than %d bytes (MAX_UPLOAD_BYTES)", limit))
}

// preflighted reports whether r carries a header that a cross-site form or link cannot send.
func preflighted(r *http.Request, contentType string) bool {
	for _, h := range preflightHeaders {
		if r.Header.Get(h) != "" {
			return true
		}
	}
	switch contentType {
	case "", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return false
	}
	return true
}

func writeCSRFRefusal(w http.ResponseWriter, mediaType string) {
	writeHTTPError(w, mediaType, http.StatusBadRequest, apperr.CSRFPreflightRequired,
		"this request has been blocked as a potential cross-site request forgery: send a GraphQL-Preflight: 1 header "+
			"(or a JSON Content-Type) with GET and multipart requests")
}

// negotiateMediaType picks the response media type from the Accept header values: the supported
// type with the highest q, the first listed on a tie; application/json for a missing header or a
// wildcard, unless the header refuses it by name (q=0), when a wildcard means the other one. It
// reports false when nothing acceptable is supported.
func negotiateMediaType(accepts []string) (string, bool) {
	refused := map[string]bool{}
	for _, accept := range accepts {
		for part := range strings.SplitSeq(accept, ",") {
			if mt, params, err := mime.ParseMediaType(part); err == nil {
				if q, err := strconv.ParseFloat(params["q"], 64); err == nil && q == 0 {
					refused[mt] = true
				}
			}
		}
	}
	wildcard := mediaJSON
	if refused[mediaJSON] {
		wildcard = mediaGraphQLResponse
	}
	best, bestQ := "", 0.0
	seen := false
	for _, accept := range accepts {
		for part := range strings.SplitSeq(accept, ",") {
			if strings.TrimSpace(part) == "" {
				continue
			}
			seen = true
			mt, params, err := mime.ParseMediaType(part)
			if err != nil {
				continue
			}
			q := 1.0
			if v, ok := params["q"]; ok {
				if q, err = strconv.ParseFloat(v, 64); err != nil {
					continue
				}
			}
			var candidate string
			switch mt {
			case mediaGraphQLResponse:
				candidate = mediaGraphQLResponse
			case mediaJSON:
				candidate = mediaJSON
			case "application/*", "*/*":
				candidate = wildcard
			}
			if candidate != "" && !refused[candidate] && q > 0 && q > bestQ {
				best, bestQ = candidate, q
			}
		}
	}
	if !seen {
		return mediaJSON, true
	}
	return best, best != ""
}

// Transport is the GET and POST (application/json) transport. Requests reach it through Handler,
// which has refused what GraphQL over HTTP does not allow.
type Transport struct {
	// MaxListValues is the largest bound of any list input (InputRules.MaxBound): the JSON of a
	// request is cut to one value more in any longer array before it is decoded, and refused with
	// an object of more members. Zero: nothing is cut.
	MaxListValues int
}

var _ graphql.Transport = Transport{}

// Supports reports whether r is a GET, or a POST of application/json, that asks for no upgrade.
func (Transport) Supports(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return false
	}
	if r.Method == http.MethodGet {
		return true
	}
	// As Handler: a malformed parameter (charset without a value) does not hide the type.
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return (err == nil || errors.Is(err, mime.ErrInvalidMediaParameter)) && r.Method == http.MethodPost && mt == mediaJSON
}

// requestError is a request refused before GraphQL looks at it.
type requestError struct {
	status int
	code   apperr.Code
	msg    string
}

func (e *requestError) Error() string { return e.msg }

// Do reads r's parameters, runs the operation and writes its response with the status GraphQL
// over HTTP gives it.
func (t Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	ctx := r.Context()
	ex := exchangeFrom(ctx)
	if ex == nil { // served without Handler (not expected): answer as application/json
		ex = &exchange{method: r.Method, mediaType: mediaJSON, header: w.Header()}
		ctx = context.WithValue(ctx, exchangeKey{}, ex)
	}
	start := graphql.Now()
	params, cut, err := readParams(r, t.MaxListValues)
	var bad *gqlerror.Error
	if errors.As(err, &bad) { // refused as the operation guard refuses a NUL: a GraphQL request error
		errs := gqlerror.List{bad}
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, &graphql.OperationContext{}), errs)
		writeResponse(w, ex, requestErrorStatus(ex, errs), resp, false)
		return
	}
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			re = &requestError{status: http.StatusBadRequest, code: apperr.BadRequest, msg: err.Error()}
		}
		countHTTPRefusal(ex.metrics, re.code)
		writeHTTPError(w, ex.mediaType, re.status, re.code, re.msg)
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}

	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs == nil && cut {
		// The InputRules refuse every list that was cut (none takes more than MaxListValues); a
		// list that reached no list input must not run cut short either.
		errs = gqlerror.List{{Message: fmt.Sprintf("a list in the request holds more than %d values", t.MaxListValues),
			Extensions: map[string]any{"code": string(apperr.InvalidInput), "limit": t.MaxListValues}}}
	}
	if errs != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs)
		writeResponse(w, ex, requestErrorStatus(ex, errs), resp, false)
		return
	}
	if r.Method == http.MethodGet && opCtx.Operation.Operation != ast.Query {
		// The operation guard refuses this first; kept so that no path runs a mutation over GET.
		w.Header().Set("Allow", "POST")
		writeHTTPError(w, ex.mediaType, http.StatusMethodNotAllowed, apperr.MethodNotAllowed, "mutations need POST")
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	status := http.StatusOK
	if ex.status != 0 {
		status = ex.status
	}
	writeResponse(w, ex, status, responses(ctx), true)
}

// readParams reads the GraphQL parameters of a GET query string or a POST JSON body, with any
// array of more than maxList values cut short (cutLongLists; maxList 0: none), and reports
// whether it cut one.
func readParams(r *http.Request, maxList int) (*graphql.RawParams, bool, error) {
	p := &graphql.RawParams{}
	cut := false
	cutLists := func(b []byte) ([]byte, error) {
		if maxList <= 0 {
			return b, nil
		}
		out, didCut, err := cutLongLists(b, maxList)
		cut = cut || didCut
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	if r.Method == http.MethodGet {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, false, errors.New("the query string is malformed")
		}
		p.Query, p.OperationName = q.Get("query"), q.Get("operationName")
		if v := q.Get("variables"); v != "" {
			if err := CheckJSONText([]byte(v)); err != nil {
				return nil, false, err
			}
			vb, err := cutLists([]byte(v))
			if err != nil {
				return nil, false, err
			}
			if err := decodeJSON(vb, &p.Variables); err != nil {
				return nil, false, errors.New("variables is not a JSON object")
			}
		}
		if v := q.Get("extensions"); v != "" {
			if err := decodeJSON([]byte(v), &p.Extensions); err != nil {
				return nil, false, errors.New("extensions is not a JSON object")
			}
		}
	} else {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, false, &requestError{status: http.StatusRequestEntityTooLarge, code: apperr.RequestTooLarge,
					msg: fmt.Sprintf("the request body is larger than %d bytes", mbe.Limit)}
			}
			return nil, false, errors.New("the request body could not be read")
		}
		if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '[' {
			return nil, false, &requestError{status: http.StatusBadRequest, code: apperr.BatchingNotSupported,
				msg: "batched operations are not supported: send one operation per request"}
		}
		if err := CheckJSONText(body); err != nil {
			return nil, false, err
		}
		if body, err = cutLists(body); err != nil {
			return nil, false, err
		}
		var b struct {
			Query         *string        `json:"query"`
			OperationName *string        `json:"operationName"`
			Variables     map[string]any `json:"variables"`
			Extensions    map[string]any `json:"extensions"`
		}
		if err := decodeJSON(body, &b); err != nil {
			return nil, false, errors.New("the body is not a GraphQL request: a JSON object with query (string), " +
				"and optionally operationName (string), variables (object) and extensions (object)")
		}
		if b.Query != nil {
			p.Query = *b.Query
		}
		if b.OperationName != nil {
			p.OperationName = *b.OperationName
		}
		p.Variables, p.Extensions = b.Variables, b.Extensions
	}
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return nil, false, errors.New("query is required")
	}
	return p, cut, nil
}

// decodeJSON decodes exactly one JSON value into v, numbers as json.Number (as gqlgen expects).
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// requestErrorStatus is the status of a request refused before execution.
func requestErrorStatus(ex *exchange, errs gqlerror.List) int {
	if ex.status != 0 {
		return ex.status
	}
	for _, e := range errs {
		if code, _ := e.Extensions["code"].(string); code == string(apperr.Internal) {
			return http.StatusInternalServerError
		}
	}
	if ex.mediaType == mediaGraphQLResponse {
		return http.StatusBadRequest
	}
	return http.StatusOK
}

// writeResponse writes resp with status; a request error (executed false) has no data entry, as
// the GraphQL specification says of errors raised before execution.
func writeResponse(w http.ResponseWriter, ex *exchange, status int, resp *graphql.Response, executed bool) {
	var b []byte
	var err error
	switch {
	case resp == nil:
		b, err = json.Marshal(map[string]any{"errors": gqlerror.List{{Message: "no response"}}})
	case executed:
		b, err = encodeExecuted(resp)
	default:
		b, err = json.Marshal(struct {
			Errors     gqlerror.List  `json:"errors"`
			Extensions map[string]any `json:"extensions,omitempty"`
		}{resp.Errors, resp.Extensions})
	}
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errors":[{"message":"internal error","extensions":{"code":"INTERNAL"}}]}`)
	}
	w.Header().Set("Content-Type", ex.mediaType+"; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b))) // one write, not a chunked stream
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// encodeExecuted writes an executed response. gqlgen has already encoded data as JSON; passing it
// through json.Marshal would validate and compact that whole document again (a tenth of a browse
// request's CPU), so it is copied as is and only errors and extensions are encoded.
func encodeExecuted(resp *graphql.Response) ([]byte, error) {
	b := make([]byte, 0, len(resp.Data)+64)
	b = append(b, '{')
	if len(resp.Errors) > 0 {
		errs, err := json.Marshal(resp.Errors)
		if err != nil {
			return nil, err
		}
		b = append(append(b, `"errors":`...), errs...)
		b = append(b, ',')
	}
	b = append(b, `"data":`...)
	if len(resp.Data) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, resp.Data...)
	}
	if len(resp.Extensions) > 0 {
		ext, err := json.Marshal(resp.Extensions)
		if err != nil {
			return nil, err
		}
		b = append(append(b, `,"extensions":`...), ext...)
	}
	return append(b, '}'), nil
}

// writeHTTPError answers a request refused before GraphQL with one error carrying code.
func writeHTTPError(w http.ResponseWriter, mediaType string, status int, code apperr.Code, msg string) {
	err := &gqlerror.Error{Message: msg}
	errcode.Set(err, string(code))
	w.Header().Set("Content-Type", mediaType+"; charset=utf-8")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"errors": gqlerror.List{err}})
	_, _ = w.Write(b)
}

// CheckJSONText refuses JSON text (a request body, a GET request's variables, a WebSocket
// message's payload) with a string that is not valid UTF-8, as raw bytes or as an escaped lone
// surrogate (\ud800): encoding/json would quietly turn either into U+FFFD, so a value the client
// did not send would reach the resolvers. The refusal is the operation guard's for a NUL
// (INVALID_INPUT).
func CheckJSONText(b []byte) *gqlerror.Error {
	if utf8.Valid(b) && !hasLoneSurrogate(b) {
		return nil
	}
	return badStringError()
}

// hasLoneSurrogate reports whether JSON text b has a \u escape of a UTF-16 surrogate that is not
// a high one followed by an escaped low one.
func hasLoneSurrogate(b []byte) bool {
	for i := bytes.IndexByte(b, '\\'); i >= 0 && i < len(b); {
		if i+1 >= len(b) {
			return false
		}
		if b[i+1] != 'u' { // another escape (\\, \n, ...): skip the escaped character
			i = nextBackslash(b, i+2)
			continue
		}
		r, ok := hex4(b[i+2:])
		switch {
		case !ok: // not JSON: the decoder refuses it
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		case r >= 0xD800 && r <= 0xDBFF:
			if len(b) < i+12 || b[i+6] != '\\' || b[i+7] != 'u' {
				return true
			}
			if lo, ok := hex4(b[i+8:]); !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
		i = nextBackslash(b, i+6)
	}
	return false
}

// nextBackslash is the index of the first backslash of b at or after from, or -1.
func nextBackslash(b []byte, from int) int {
	if from >= len(b) {
		return -1
	}
	if j := bytes.IndexByte(b[from:], '\\'); j >= 0 {
		return from + j
	}
	return -1
}

// hex4 decodes the four hexadecimal digits b starts with.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
