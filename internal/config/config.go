// Package config reads Leadmarket's configuration from environment variables into one struct.
// Nothing else in the project reads the environment.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Config is the whole configuration. Each field names its variable and default.
type Config struct {
	// Env is ENV: "development" (default) or "production". Production turns off GraphiQL and
	// introspection and refuses development secrets, JWT keys under 32 bytes and CORS_ORIGINS=*.
	Env string
	// HTTPAddr is HTTP_ADDR, the listen address. Default "127.0.0.1:8080".
	HTTPAddr string
	// WSSubscriberBuffer is WS_SUBSCRIBER_BUFFER, how many events a subscriber may fall behind
	// before its subscription ends with SUBSCRIBER_TOO_SLOW. Default 256.
	WSSubscriberBuffer int
	// WSMaxSubscriptions is WS_MAX_SUBSCRIPTIONS, the most subscriptions one socket may hold
	// (the next gets TOO_MANY_SUBSCRIPTIONS). Default 25.
	WSMaxSubscriptions int
	// WSMaxConnectionsPerUser is WS_MAX_CONNECTIONS_PER_USER, the most sockets one user may hold
	// on one instance (the next is closed 4429). Default 10.
	WSMaxConnectionsPerUser int
	// WSInitTimeout is WS_INIT_TIMEOUT, how long a socket may take to send connection_init
	// (then it is closed 4408). Default 3s.
	WSInitTimeout time.Duration
	// WSCatchUpWindow is WS_CATCHUP_WINDOW: after a lost LISTEN connection the catch-up reads
	// each table from the last event delivered from it less this much, for transactions that
	// were open across that event and committed during the outage (an event's time is its
	// transaction's start). The longest such transaction it covers, not the longest outage: the
	// catch-up reads everything after that event however long ago. Default 1m.
	WSCatchUpWindow time.Duration
	// DatabaseURL is DATABASE_URL. Default empty: an embedded PostgreSQL under DataDir.
	DatabaseURL string
	// DataDir is DATA_DIR, where the embedded PostgreSQL keeps its files. Default ".data".
	DataDir string
	// EmbeddedPort is EMBEDDED_PG_PORT, the loopback port of the embedded PostgreSQL. Default 54329.
	EmbeddedPort uint32
	// DBMaxConns is DB_MAX_CONNS, the connection pool size. Default 20.
	DBMaxConns int
	// DatabaseReadURL is DATABASE_READ_URL, a streaming replica of DATABASE_URL that browse and
	// the other reads that tolerate a replica's lag go to (docs/scaling.md). Default empty:
	// everything on DATABASE_URL. Needs DATABASE_URL.
	DatabaseReadURL string
	// DBReadMaxConns is DB_READ_MAX_CONNS, the read database's pool size. Default 10.
	DBReadMaxConns int
	// DatabaseReadSticky is DATABASE_READ_STICKY: after a caller's write, how long their reads
	// stay on the primary unless the replica has replayed it sooner. Default 5s.
	DatabaseReadSticky time.Duration
	// JWTSecret is JWT_SECRET, the HS256 key that signs and verifies tokens. Default a
	// development secret (DevJWTSecret); in production it is required, at least 32 bytes and not
	// a development secret.
	JWTSecret string
	// JWTSecretPrevious is JWT_SECRET_PREVIOUS, the key JWT_SECRET replaced: tokens signed with it
	// still verify (nothing new is signed with it) until it is removed, once they have expired.
	// Default empty. In production the same rules as JWT_SECRET's hold.
	JWTSecretPrevious string
	// AdminRequireMFA is ADMIN_REQUIRE_MFA: platform-admin operations need aal2. Default true in
	// production, false otherwise.
	AdminRequireMFA bool
	// CreditValueCents is CREDIT_VALUE_CENTS, what one credit is worth for commissions. Default 40.
	CreditValueCents int64
	// CommissionBonusTiers is COMMISSION_BONUS_TIERS, "passRate:points" pairs: a partner whose
	// verification pass rate reaches passRate earns points more percent. Default "0.90:2.5,0.95:5".
	CommissionBonusTiers []BonusTier
	// LogLevel is LOG_LEVEL: debug, info (default), warn, error.
	LogLevel string
	// LogFormat is LOG_FORMAT: text (default) or json.
	LogFormat string
	// ShutdownTimeout is SHUTDOWN_TIMEOUT, how long in-flight work may take at shutdown. Default 20s.
	ShutdownTimeout time.Duration

	// RedisURL is REDIS_URL. Default empty: rate limits are kept in process memory; set, they are
	// shared by every instance through Redis.
	RedisURL string
	// RateLimitsEnabled is RATE_LIMITS_ENABLED. Default true.
	RateLimitsEnabled bool
	// RateLimitPurchase, RateLimitBrowse and RateLimitStandard are RATE_LIMIT_PURCHASE (default 10),
	// RATE_LIMIT_BROWSE (60) and RATE_LIMIT_STANDARD (100): operations per caller per
	// RateLimitWindow.
	RateLimitPurchase, RateLimitBrowse, RateLimitStandard int
	// RateLimitWindow is RATE_LIMIT_WINDOW, the period the RATE_LIMIT_* counts are per (a caller
	// gets one operation back every window/limit). Default 1m.
	RateLimitWindow time.Duration
	// TrustedProxies is TRUSTED_PROXIES, comma-separated IPs or CIDRs whose X-Forwarded-For is
	// believed. Default none.
	TrustedProxies []string
	// CORSOrigins is CORS_ORIGINS, comma-separated origins allowed to call the API from a browser.
	// Default none.
	CORSOrigins []string
	// ComplexityLimit is COMPLEXITY_LIMIT, the highest computed cost of an operation. Default 5000.
	ComplexityLimit int
	// DepthLimit is DEPTH_LIMIT, the deepest selection nesting. Default 10.
	DepthLimit int
	// AliasLimit is ALIAS_LIMIT, the most aliases in one operation. Default 30.
	AliasLimit int
	// MaxDocumentBytes is MAX_DOCUMENT_BYTES, the largest GraphQL document. Default 65536.
	MaxDocumentBytes int
	// FieldLimit is FIELD_LIMIT, the most fields in one operation, fragments expanded and
	// duplicates counted. Default 500.
	FieldLimit int

	// StripeSecretKey is STRIPE_SECRET_KEY. Default empty: buying credits is unavailable
	// (required when ENV=production).
	StripeSecretKey string
	// StripeAPIURL is STRIPE_API_URL, the Stripe API base. Default https://api.stripe.com; point
	// it at stripe-mock for local work.
	StripeAPIURL string
	// StripeWebhookSecrets is STRIPE_WEBHOOK_SECRET, comma-separated whsec_... secrets: a
	// webhook signed under any of them is accepted, so the old endpoint secret keeps working while
	// Stripe rolls it (up to 24 hours). Default empty: every webhook is refused (required when
	// ENV=production).
	StripeWebhookSecrets []string
	// WorkerConcurrency is WORKER_CONCURRENCY, background jobs run at once by this instance.
	// Default 10.
	WorkerConcurrency int

	// MaxUploadBytes is MAX_UPLOAD_BYTES, the largest lead upload: a multipart request to
	// /graphql whose body is larger is refused with 413. Default 209715200 (200 MiB).
	MaxUploadBytes int64
	// MaxUploadRows is MAX_UPLOAD_ROWS, the most data rows an uploaded file may have; a larger
	// file fails with TOO_MANY_ROWS. Default 1000000.
	MaxUploadRows int
	// UploadRetention is UPLOAD_RETENTION, how long an upload's rejected rows are kept (the
	// hourly clean-up deletes older ones; the upload and its counts stay). A Go duration, or a
	// number of days such as "90d". Default 90 days.
	UploadRetention time.Duration
	// MillionVerifierAPIKey is MILLIONVERIFIER_API_KEY. Default empty: MillionVerifier is not
	// asked. With neither it nor ZEROBOUNCE_API_KEY, verification is off and leads stay PENDING.
	MillionVerifierAPIKey string
	// MillionVerifierURL is MILLIONVERIFIER_URL, its API base. Default https://api.millionverifier.com.
	MillionVerifierURL string
	// ZeroBounceAPIKey is ZEROBOUNCE_API_KEY. Default empty: ZeroBounce is not asked.
	ZeroBounceAPIKey string
	// ZeroBounceURL is ZEROBOUNCE_URL, its API base. Default https://api.zerobounce.net.
	ZeroBounceURL string
	// VerifyConcurrency is VERIFY_CONCURRENCY, the most provider calls in flight across every
	// instance together. Default 5.
	VerifyConcurrency int
	// VerifyTimeout is VERIFY_TIMEOUT, the longest one provider call may take (2s to 60s).
	// Default 20s.
	VerifyTimeout time.Duration
	// VerifyMaxAttempts is VERIFY_MAX_ATTEMPTS: after this many failed attempts (no provider
	// could answer) a lead is UNKNOWN. Default 3.
	VerifyMaxAttempts int
	// VerifySweepInterval is VERIFY_SWEEP_INTERVAL, how often pending leads and failed ones due
	// for a retry are taken. Default 5m.
	VerifySweepInterval time.Duration
	// BounceRefundWindow is BOUNCE_REFUND_WINDOW: a purchase this recent may be reported as
	// bounced, and is refunded when its lead is found INVALID. A Go duration or whole days ("30d").
	// Default 30 days.
	BounceRefundWindow time.Duration
	// ExportRetention is EXPORT_RETENTION, how long a CSV export is kept after it was requested
	// (then its download answers 404 and the hourly clean-up deletes it): a Go duration or a
	// number of days such as "7d". Default 7 days.
	ExportRetention time.Duration

	// MetricsAddr is METRICS_ADDR, a listen address (host:port) that serves /metrics alone.
	// Default empty: /metrics is served on HTTP_ADDR outside production and not at all in
	// production (set METRICS_ADDR there, on an address only Prometheus reaches).
	MetricsAddr string
	// MetricsEnabled is METRICS_ENABLED: record the Prometheus metrics. Default true; false
	// records nothing and /metrics answers 404 (the benchmark's baseline).
	MetricsEnabled bool
	// MetricsOperationNames is METRICS_OPERATION_NAMES, comma-separated GraphQL operation names
	// that always get a name label of their own in graphql_operations_total (besides up to 100
	// names seen more than 50 times; any other is "other"). Default none.
	MetricsOperationNames []string
	// OTLPEndpoint is OTEL_EXPORTER_OTLP_ENDPOINT, the OpenTelemetry collector's OTLP/HTTP base
	// URL (such as http://127.0.0.1:4318): set, traces are exported to its /v1/traces. Default
	// empty: no tracing, no exporter. The SDK reads the other OTEL_* variables itself.
	OTLPEndpoint string
	// OTLPTracesEndpoint is OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the full URL traces go to; it
	// wins over OTLPEndpoint and turns tracing on by itself. Default empty.
	OTLPTracesEndpoint string
	// OTelSDKDisabled is OTEL_SDK_DISABLED: true turns tracing off whatever the endpoints say.
	// Default false.
	OTelSDKDisabled bool
	// SentryDSN is SENTRY_DSN: set, panics and INTERNAL errors are reported to Sentry. Default
	// empty: no error reports.
	SentryDSN string
	// SentryEnvironment is SENTRY_ENVIRONMENT, the reports' environment. Default ENV.
	SentryEnvironment string
}

// BonusTier is one step of the commission bonus: at PassRate or above, Points percent more.
type BonusTier struct {
	PassRate float64
	Points   float64
}

// DevJWTSecret is the JWT secret used when JWT_SECRET is unset outside production.
const DevJWTSecret = "leadmarket-development-secret-do-not-use-in-production"

// developmentSecrets are the secrets this repository hands out for local work (DevJWTSecret and
// the README's examples); production refuses them in any secret variable.
var developmentSecrets = []string{DevJWTSecret, "whsec_dev", "sk_test_123"}

// IsProduction reports whether ENV=production.
func (c Config) IsProduction() bool { return c.Env == "production" }

// FromEnv reads the configuration with lookup (os.LookupEnv in production code).
func FromEnv(lookup func(string) (string, bool)) (Config, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	get := func(name, def string) string {
		if v, ok := lookup(name); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	var errs []error
	c := Config{
		Env:         get("ENV", "development"),
		HTTPAddr:    get("HTTP_ADDR", "127.0.0.1:8080"),
		DatabaseURL: get("DATABASE_URL", ""),
		DataDir:     get("DATA_DIR", ".data"),
		JWTSecret:   get("JWT_SECRET", ""),
		LogLevel:    get("LOG_LEVEL", "info"),
		LogFormat:   get("LOG_FORMAT", "text"),
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT: %q is not text or json", c.LogFormat))
	}
	if c.Env != "development" && c.Env != "production" && c.Env != "test" {
		errs = append(errs, fmt.Errorf("ENV: %q is not development, test or production", c.Env))
	}
	port, err := strconv.ParseUint(get("EMBEDDED_PG_PORT", "54329"), 10, 16)
	if err != nil || port == 0 {
		errs = append(errs, fmt.Errorf("EMBEDDED_PG_PORT: %q is not a port", get("EMBEDDED_PG_PORT", "")))
	}
	c.EmbeddedPort = uint32(port)
	if c.DBMaxConns, err = strconv.Atoi(get("DB_MAX_CONNS", "20")); err != nil || c.DBMaxConns < 2 {
		errs = append(errs, fmt.Errorf("DB_MAX_CONNS: %q is not a number of at least 2", get("DB_MAX_CONNS", "")))
	}
	errs = append(errs, c.readReadDatabase(get)...)
	if c.JWTSecret == "" {
		if c.IsProduction() {
			errs = append(errs, errors.New("JWT_SECRET: required when ENV=production"))
		} else {
			c.JWTSecret = DevJWTSecret
		}
	}
	c.JWTSecretPrevious = get("JWT_SECRET_PREVIOUS", "")
	if c.AdminRequireMFA, err = strconv.ParseBool(get("ADMIN_REQUIRE_MFA", strconv.FormatBool(c.IsProduction()))); err != nil {
		errs = append(errs, fmt.Errorf("ADMIN_REQUIRE_MFA: %q is not a boolean", get("ADMIN_REQUIRE_MFA", "")))
	}
	if c.CreditValueCents, err = strconv.ParseInt(get("CREDIT_VALUE_CENTS", "40"), 10, 64); err != nil || c.CreditValueCents <= 0 {
		errs = append(errs, fmt.Errorf("CREDIT_VALUE_CENTS: %q is not a positive number of cents", get("CREDIT_VALUE_CENTS", "")))
	}
	// Set but empty means no bonus at all, so this one is not read with get (blank = default).
	tiers, set := lookup("COMMISSION_BONUS_TIERS")
	if !set {
		tiers = "0.90:2.5,0.95:5"
	}
	if c.CommissionBonusTiers, err = ParseBonusTiers(tiers); err != nil {
		errs = append(errs, fmt.Errorf("COMMISSION_BONUS_TIERS: %w", err))
	}
	if c.ShutdownTimeout, err = time.ParseDuration(get("SHUTDOWN_TIMEOUT", "20s")); err != nil || c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT: %q is not a positive duration", get("SHUTDOWN_TIMEOUT", "")))
	}
	c.RedisURL = get("REDIS_URL", "")
	if c.RateLimitsEnabled, err = strconv.ParseBool(get("RATE_LIMITS_ENABLED", "true")); err != nil {
		errs = append(errs, fmt.Errorf("RATE_LIMITS_ENABLED: %q is not a boolean", get("RATE_LIMITS_ENABLED", "")))
	}
	positive := func(name, def string, dst *int) {
		v, err := strconv.Atoi(get(name, def))
		if err != nil || v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive number", name, get(name, "")))
		}
		*dst = v
	}
	positive("RATE_LIMIT_PURCHASE", "10", &c.RateLimitPurchase)
	positive("RATE_LIMIT_BROWSE", "60", &c.RateLimitBrowse)
	positive("RATE_LIMIT_STANDARD", "100", &c.RateLimitStandard)
	positive("COMPLEXITY_LIMIT", "5000", &c.ComplexityLimit)
	positive("DEPTH_LIMIT", "10", &c.DepthLimit)
	positive("ALIAS_LIMIT", "30", &c.AliasLimit)
	positive("MAX_DOCUMENT_BYTES", "65536", &c.MaxDocumentBytes)
	positive("FIELD_LIMIT", "500", &c.FieldLimit)
	if c.RateLimitWindow, err = time.ParseDuration(get("RATE_LIMIT_WINDOW", "1m")); err != nil || c.RateLimitWindow < time.Second {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_WINDOW: %q is not a duration of at least 1s", get("RATE_LIMIT_WINDOW", "")))
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			errs = append(errs, fmt.Errorf("REDIS_URL: %w", err))
		}
	}
	positive("WORKER_CONCURRENCY", "10", &c.WorkerConcurrency)
	if c.MaxUploadBytes, err = strconv.ParseInt(get("MAX_UPLOAD_BYTES", "209715200"), 10, 64); err != nil || c.MaxUploadBytes <= 0 {
		errs = append(errs, fmt.Errorf("MAX_UPLOAD_BYTES: %q is not a positive number of bytes", get("MAX_UPLOAD_BYTES", "")))
	}
	positive("MAX_UPLOAD_ROWS", "1000000", &c.MaxUploadRows)
	positive("WS_SUBSCRIBER_BUFFER", "256", &c.WSSubscriberBuffer)
	positive("WS_MAX_SUBSCRIPTIONS", "25", &c.WSMaxSubscriptions)
	positive("WS_MAX_CONNECTIONS_PER_USER", "10", &c.WSMaxConnectionsPerUser)
	if c.WSInitTimeout, err = time.ParseDuration(get("WS_INIT_TIMEOUT", "3s")); err != nil || c.WSInitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("WS_INIT_TIMEOUT: %q is not a positive duration", get("WS_INIT_TIMEOUT", "")))
	}
	if c.WSCatchUpWindow, err = time.ParseDuration(get("WS_CATCHUP_WINDOW", "1m")); err != nil || c.WSCatchUpWindow < time.Second {
		errs = append(errs, fmt.Errorf("WS_CATCHUP_WINDOW: %q is not a duration of at least 1s", get("WS_CATCHUP_WINDOW", "")))
	}
	if c.UploadRetention, err = ParseDays(get("UPLOAD_RETENTION", "90d")); err != nil || c.UploadRetention < time.Hour {
		errs = append(errs, fmt.Errorf("UPLOAD_RETENTION: %q is not a duration of at least 1h (such as 90d or 720h)", get("UPLOAD_RETENTION", "")))
	}
	if c.ExportRetention, err = ParseDays(get("EXPORT_RETENTION", "7d")); err != nil || c.ExportRetention < time.Minute {
		errs = append(errs, fmt.Errorf("EXPORT_RETENTION: %q is not a duration of at least 1m (such as 168h or 7d)",
			get("EXPORT_RETENTION", "")))
	}
	c.TrustedProxies = list(get("TRUSTED_PROXIES", ""))
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is neither an IP address nor a CIDR prefix", p))
			}
		}
	}
	c.CORSOrigins = list(get("CORS_ORIGINS", ""))
	for _, o := range c.CORSOrigins {
		if u, err := url.Parse(o); o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" || u.User != nil) {
			errs = append(errs, fmt.Errorf("CORS_ORIGINS: %q is not an origin such as https://app.example.com (or *)", o))
		}
	}
	c.StripeSecretKey = get("STRIPE_SECRET_KEY", "")
	c.StripeAPIURL = strings.TrimRight(get("STRIPE_API_URL", "https://api.stripe.com"), "/")
	if u, err := url.Parse(c.StripeAPIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("STRIPE_API_URL: %q is not an http(s) URL such as https://api.stripe.com", c.StripeAPIURL))
	}
	c.StripeWebhookSecrets = list(get("STRIPE_WEBHOOK_SECRET", ""))
	errs = append(errs, c.readVerification(get)...)
	errs = append(errs, c.readTelemetry(get)...)
	// The verification slots hold up to two connections each of the pool while verification
	// runs (internal/verify's Limiter); requests need the rest.
	if c.VerificationEnabled() && c.DBMaxConns < 2*c.VerifyConcurrency+4 {
		errs = append(errs, fmt.Errorf("DB_MAX_CONNS: %d is too few for VERIFY_CONCURRENCY %d: verification holds up to %d connections; give at least %d",
			c.DBMaxConns, c.VerifyConcurrency, 2*c.VerifyConcurrency, 2*c.VerifyConcurrency+4))
	}
	if c.IsProduction() {
		errs = append(errs, c.productionSecrets()...)
	}
	errs = append(errs, c.readMetrics(get)...)
	return c, errors.Join(errs...)
}

// readReadDatabase reads the read database's variables.
func (c *Config) readReadDatabase(get func(name, def string) string) []error {
	var errs []error
	c.DatabaseReadURL = get("DATABASE_READ_URL", "")
	if c.DatabaseReadURL != "" {
		if _, err := pgx.ParseConfig(c.DatabaseReadURL); err != nil {
			errs = append(errs, fmt.Errorf("DATABASE_READ_URL: %w", err))
		}
		if c.DatabaseURL == "" {
			errs = append(errs, errors.New("DATABASE_READ_URL: needs DATABASE_URL (the embedded server has no replica)"))
		}
	}
	var err error
	if c.DBReadMaxConns, err = strconv.Atoi(get("DB_READ_MAX_CONNS", "10")); err != nil || c.DBReadMaxConns < 1 {
		errs = append(errs, fmt.Errorf("DB_READ_MAX_CONNS: %q is not a positive number", get("DB_READ_MAX_CONNS", "")))
	}
	if c.DatabaseReadSticky, err = time.ParseDuration(get("DATABASE_READ_STICKY", "5s")); err != nil ||
		c.DatabaseReadSticky < 100*time.Millisecond || c.DatabaseReadSticky > time.Hour {
		errs = append(errs, fmt.Errorf("DATABASE_READ_STICKY: %q is not a duration from 100ms to 1h", get("DATABASE_READ_STICKY", "")))
	}
	return errs
}

// productionSecrets are the refusals of ENV=production: a missing Stripe secret, a development
// secret in any secret variable, a JWT key shorter than 32 bytes, and CORS_ORIGINS=*.
func (c *Config) productionSecrets() []error {
	var errs []error
	if c.StripeSecretKey == "" || len(c.StripeWebhookSecrets) == 0 {
		errs = append(errs, errors.New("STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET: required when ENV=production"))
	}
	secrets := []struct {
		name   string
		values []string
	}{
		{"JWT_SECRET", []string{c.JWTSecret}}, {"JWT_SECRET_PREVIOUS", []string{c.JWTSecretPrevious}},
		{"STRIPE_SECRET_KEY", []string{c.StripeSecretKey}}, {"STRIPE_WEBHOOK_SECRET", c.StripeWebhookSecrets},
	}
	for _, s := range secrets {
		for _, v := range s.values {
			if v != "" && slices.Contains(developmentSecrets, v) {
				errs = append(errs, fmt.Errorf("%s: a development secret cannot be used when ENV=production", s.name))
			}
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, fmt.Errorf("JWT_SECRET: %d bytes; at least 32 are required when ENV=production", len(c.JWTSecret)))
	}
	if c.JWTSecretPrevious != "" && len(c.JWTSecretPrevious) < 32 {
		errs = append(errs, fmt.Errorf("JWT_SECRET_PREVIOUS: %d bytes; at least 32 are required when ENV=production", len(c.JWTSecretPrevious)))
	}
	if slices.Contains(c.CORSOrigins, "*") {
		errs = append(errs, errors.New("CORS_ORIGINS: * (any origin) is not allowed when ENV=production; list the app's origins"))
	}
	return errs
}

// readMetrics reads the METRICS_* variables.
func (c *Config) readMetrics(get func(name, def string) string) []error {
	var errs []error
	c.MetricsAddr = get("METRICS_ADDR", "")
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("METRICS_ADDR: %q is not a listen address such as 127.0.0.1:9090", c.MetricsAddr))
		} else if c.MetricsAddr == c.HTTPAddr {
			errs = append(errs, fmt.Errorf("METRICS_ADDR: %q is HTTP_ADDR too; give /metrics an address of its own, or leave METRICS_ADDR unset", c.MetricsAddr))
		}
	}
	var err error
	if c.MetricsEnabled, err = strconv.ParseBool(get("METRICS_ENABLED", "true")); err != nil {
		errs = append(errs, fmt.Errorf("METRICS_ENABLED: %q is not true or false", get("METRICS_ENABLED", "")))
	}
	c.MetricsOperationNames = list(get("METRICS_OPERATION_NAMES", ""))
	for _, n := range c.MetricsOperationNames {
		if !graphQLName(n) {
			errs = append(errs, fmt.Errorf("METRICS_OPERATION_NAMES: %q is not a GraphQL operation name", n))
		}
	}
	return errs
}

// graphQLName reports whether s is a GraphQL name: a letter or _, then letters, digits or _.
func graphQLName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// readVerification reads the email verification variables.
func (c *Config) readVerification(get func(name, def string) string) []error {
	var errs []error
	httpURL := func(name, def string) string {
		v := strings.TrimRight(get(name, def), "/")
		if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL such as %s", name, v, def))
		}
		return v
	}
	c.MillionVerifierAPIKey = get("MILLIONVERIFIER_API_KEY", "")
	c.MillionVerifierURL = httpURL("MILLIONVERIFIER_URL", "https://api.millionverifier.com")
	c.ZeroBounceAPIKey = get("ZEROBOUNCE_API_KEY", "")
	c.ZeroBounceURL = httpURL("ZEROBOUNCE_URL", "https://api.zerobounce.net")
	var err error
	if c.VerifyConcurrency, err = strconv.Atoi(get("VERIFY_CONCURRENCY", "5")); err != nil || c.VerifyConcurrency < 1 || c.VerifyConcurrency > 100 {
		errs = append(errs, fmt.Errorf("VERIFY_CONCURRENCY: %q is not a number from 1 to 100", get("VERIFY_CONCURRENCY", "")))
	}
	if c.VerifyTimeout, err = time.ParseDuration(get("VERIFY_TIMEOUT", "20s")); err != nil ||
		c.VerifyTimeout < 2*time.Second || c.VerifyTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("VERIFY_TIMEOUT: %q is not a duration from 2s to 60s", get("VERIFY_TIMEOUT", "")))
	}
	if c.VerifyMaxAttempts, err = strconv.Atoi(get("VERIFY_MAX_ATTEMPTS", "3")); err != nil || c.VerifyMaxAttempts < 1 || c.VerifyMaxAttempts > 20 {
		errs = append(errs, fmt.Errorf("VERIFY_MAX_ATTEMPTS: %q is not a number from 1 to 20", get("VERIFY_MAX_ATTEMPTS", "")))
	}
	if c.VerifySweepInterval, err = time.ParseDuration(get("VERIFY_SWEEP_INTERVAL", "5m")); err != nil || c.VerifySweepInterval < time.Second {
		errs = append(errs, fmt.Errorf("VERIFY_SWEEP_INTERVAL: %q is not a duration of at least 1s", get("VERIFY_SWEEP_INTERVAL", "")))
	}
	if c.BounceRefundWindow, err = ParseDays(get("BOUNCE_REFUND_WINDOW", "30d")); err != nil || c.BounceRefundWindow < time.Hour {
		errs = append(errs, fmt.Errorf("BOUNCE_REFUND_WINDOW: %q is not a duration of at least 1h such as 30d or 720h", get("BOUNCE_REFUND_WINDOW", "")))
	}
	return errs
}

// VerificationEnabled reports whether a verification provider has an API key.
func (c Config) VerificationEnabled() bool {
	return c.MillionVerifierAPIKey != "" || c.ZeroBounceAPIKey != ""
}

// ParseDays parses a Go duration ("720h") or a whole number of days ("30d"), which Go's
// durations do not have.
func ParseDays(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ParseBonusTiers parses "0.90:2.5,0.95:5" into tiers sorted as written.
func ParseBonusTiers(s string) ([]BonusTier, error) {
	var tiers []BonusTier
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		rate, points, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			return nil, fmt.Errorf("%q is not passRate:points", part)
		}
		r, err1 := strconv.ParseFloat(rate, 64)
		p, err2 := strconv.ParseFloat(points, 64)
		if err1 != nil || err2 != nil || r < 0 || r > 1 || p < 0 || p > 100 {
			return nil, fmt.Errorf("%q is not passRate (0..1):points (0..100)", part)
		}
		tiers = append(tiers, BonusTier{PassRate: r, Points: p})
	}
	return tiers, nil
}
