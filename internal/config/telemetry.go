package config

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// readTelemetry reads the tracing and error-reporting variables.
func (c *Config) readTelemetry(get func(name, def string) string) []error {
	var errs []error
	endpoint := func(name string) string {
		v := get(name, "")
		if u, err := url.Parse(v); v != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
			errs = append(errs, fmt.Errorf("%s: %q is not an http(s) URL such as http://127.0.0.1:4318", name, v))
		}
		return v
	}
	c.OTLPEndpoint = endpoint("OTEL_EXPORTER_OTLP_ENDPOINT")
	c.OTLPTracesEndpoint = endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	var err error
	if c.OTelSDKDisabled, err = strconv.ParseBool(get("OTEL_SDK_DISABLED", "false")); err != nil {
		errs = append(errs, fmt.Errorf("OTEL_SDK_DISABLED: %q is not a boolean", get("OTEL_SDK_DISABLED", "")))
	}
	c.SentryDSN = get("SENTRY_DSN", "")
	if c.SentryDSN != "" {
		// Sentry's form: scheme://public_key@host[:port]/[path/]project_id.
		if u, err := url.Parse(c.SentryDSN); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			u.User.Username() == "" || len(u.Path) < 2 {
			// The DSN holds a key: the message does not repeat it.
			errs = append(errs, errors.New("SENTRY_DSN: not a Sentry DSN such as https://PUBLIC_KEY@o0.ingest.sentry.io/PROJECT_ID"))
		}
	}
	c.SentryEnvironment = get("SENTRY_ENVIRONMENT", c.Env)
	return errs
}

// TracingEnabled reports whether traces are exported: an OTLP endpoint is set and
// OTEL_SDK_DISABLED is not true.
func (c Config) TracingEnabled() bool {
	return (c.OTLPEndpoint != "" || c.OTLPTracesEndpoint != "") && !c.OTelSDKDisabled
}
