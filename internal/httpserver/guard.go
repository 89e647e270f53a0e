package httpserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// ParseTrustedProxies parses TRUSTED_PROXIES entries: IP addresses or CIDR prefixes.
func ParseTrustedProxies(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if p, err := netip.ParsePrefix(e); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(e)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", e)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// clientIP is the address of the client behind r: the direct peer, unless the peer is a trusted
// proxy; then X-Forwarded-For is read from the right (the hop nearest to us), skipping trusted
// proxies, and the first untrusted address is the client. Entries a client wrote itself sit to
// the left of the first untrusted hop and are never believed.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !isTrusted(peer, trusted) {
		return peer.String()
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for h := range strings.SplitSeq(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // garbage: keep the nearest address we could trust
		}
		peer = a.Unmap()
		if !isTrusted(peer, trusted) {
			break
		}
	}
	return peer.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// apiCSP is the Content-Security-Policy of every response but GraphiQL's: JSON loads nothing.
const apiCSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// securityHeaders sets the headers every response carries: no MIME sniffing, no referrer, no
// framing, a CSP that loads nothing (GraphiQL sets its own), and HSTS in production (where TLS
// terminates in front of us; over plain HTTP in development it would only be noise).
func securityHeaders(production bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Frame-Options", "DENY")
			h.Set("Content-Security-Policy", apiCSP)
			if production {
				h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
			}
			next.ServeHTTP(w, r)
		})
	}
}

// CORS for /graphql: the request headers a browser may send and the response headers its script
// may read.
var (
	corsAllowHeaders  = "Authorization, Content-Type, Accept, GraphQL-Preflight, Apollo-Require-Preflight, X-Apollo-Operation-Name, X-Request-Id, Traceparent"
	corsExposeHeaders = "RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, Retry-After, X-Request-Id"
)

// cors answers CORS for the allow-list origins (CORS_ORIGINS; "*" allows any): a preflight from
// an allowed origin gets 204 with what it may send, one from any other origin 403; a request
// from an allowed origin gets Access-Control-Allow-Origin. No credentials are involved: callers
// authenticate with bearer tokens, not cookies.
func cors(origins []string) func(http.Handler) http.Handler {
	anyOrigin := slices.Contains(origins, "*")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			allowed := anyOrigin || slices.Contains(origins, origin)
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Add("Vary", "Access-Control-Request-Method, Access-Control-Request-Headers")
				if !allowed {
					w.WriteHeader(http.StatusForbidden)
					return
				}
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Methods", "GET, POST")
				h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			if allowed {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// inlineScript matches the inline scripts of an HTML page (those without a src attribute).
var inlineScript = regexp.MustCompile(`(?s)<script>(.*?)</script>`)

// withPageCSP serves page with a Content-Security-Policy that allows its inline scripts by hash
// and its assets from cdnOrigin (GraphiQL's page loads React and GraphiQL from jsDelivr, with
// subresource integrity).
func withPageCSP(page http.Handler, cdnOrigin string) http.Handler {
	rec := &bufferWriter{header: http.Header{}}
	page.ServeHTTP(rec, &http.Request{Method: http.MethodGet, Header: http.Header{}})
	hashes := ""
	for _, m := range inlineScript.FindAllSubmatch(rec.body.Bytes(), -1) {
		sum := sha256.Sum256(m[1])
		hashes += " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	csp := "default-src 'none'; script-src" + hashes + " " + cdnOrigin +
		"; style-src 'self' 'unsafe-inline' " + cdnOrigin + "; img-src 'self' data: " + cdnOrigin +
		"; font-src 'self' data: " + cdnOrigin + "; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		page.ServeHTTP(w, r)
	})
}

// bufferWriter records a response in memory.
type bufferWriter struct {
	header http.Header
	body   bytes.Buffer
}

func (b *bufferWriter) Header() http.Header         { return b.header }
func (b *bufferWriter) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferWriter) WriteHeader(int)             {}
