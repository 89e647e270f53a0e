package deploy

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// ruleFile is a Prometheus rule file, as much of it as alerting rules use.
type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func loadAlerts(t *testing.T) ruleFile {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "prometheus/alerts.yml")))
	dec.KnownFields(true)
	var rf ruleFile
	require.NoError(t, dec.Decode(&rf), "alerts.yml is a rule file (groups, rules, alert, expr, for, labels, annotations)")
	return rf
}

var alertName = regexp.MustCompile(`^[A-Z][A-Za-z0-9]+$`)

// alerts.yml is a well-formed rule file whose every expression selects only what the service
// exports, with the labels, annotations and runbooks an on-call engineer needs, and the alerts
// docs/operations.md promises.
func TestAlertRules(t *testing.T) {
	rf := loadAlerts(t)
	require.NotEmpty(t, rf.Groups)
	ops := string(readFile(t, "../docs/operations.md"))
	groups := map[string]bool{}
	alerts := map[string]string{} // alert name -> expr
	for _, g := range rf.Groups {
		require.NotEmpty(t, g.Name)
		require.False(t, groups[g.Name], "group %s twice", g.Name)
		groups[g.Name] = true
		require.NotEmpty(t, g.Rules, g.Name)
		for _, r := range g.Rules {
			require.Regexp(t, alertName, r.Alert, "every rule is an alerting rule with a CamelCase name")
			require.NotContains(t, alerts, r.Alert, "alert %s twice", r.Alert)
			alerts[r.Alert] = r.Expr
			require.NotEmpty(t, strings.TrimSpace(r.Expr), r.Alert)
			require.NoError(t, checkExpr(r.Expr), r.Alert)
			if r.For != "" {
				_, err := model.ParseDuration(r.For)
				require.NoError(t, err, "%s: for", r.Alert)
			}
			require.Contains(t, []string{"page", "ticket"}, r.Labels["severity"], "%s: severity", r.Alert)
			for _, a := range []string{"summary", "description", "runbook"} {
				require.NotEmpty(t, r.Annotations[a], "%s: annotation %s", r.Alert, a)
			}
			require.FileExists(t, filepath.Join("..", r.Annotations["runbook"]), "%s: its runbook", r.Alert)
			require.Contains(t, ops, "`"+r.Alert+"`", "docs/operations.md explains %s", r.Alert)
		}
	}
	// The alerts the operations guide is built around, each on the metric it is about.
	for name, metric := range map[string]string{
		"LeadmarketWebhookEventFailed":   "webhook_events_failed_total",
		"LeadmarketJobQueueStalled":      "river_queue_oldest_available_job_age_seconds",
		"LeadmarketHighErrorRate":        "http_requests_total",
		"LeadmarketDBPoolWaits":          "db_pool_wait_duration_seconds_total",
		"LeadmarketRateLimitRefusals":    "rate_limit_refusals_total",
		"LeadmarketSubscribersTooSlow":   "graphql_errors_total",
		"LeadmarketSubscriptionsDropped": "graphql_subscriptions_active",
	} {
		require.Contains(t, alerts, name)
		q, err := parseQuery(alerts[name])
		require.NoError(t, err)
		require.True(t, slices.ContainsFunc(q.selectors, func(s selector) bool { return s.name == metric }), "%s selects %s", name, metric)
	}
}

// The expression check refuses what a renamed metric, label or label value would leave behind.
func TestCheckExpr(t *testing.T) {
	for _, expr := range []string{
		`sum by (type) (increase(webhook_events_failed_total[15m])) > 0`,
		`histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{handler="graphql"}[5m]))) > 2`,
		`sum(rate(http_requests_total{code=~"5..", handler!="ready"}[5m])) / sum(rate(http_requests_total[5m]))`,
		`max by (queue) (river_queue_oldest_available_job_age_seconds{queue="verify"}) > 3600`,
		`sum(graphql_subscriptions_active) < 0.5 * sum(graphql_subscriptions_active offset 10m) and on () vector(1)`,
		`{__name__="credits_spent_total", instance="a:9090"} # a comment naming no_such_metric`,
		`rate(go_gc_duration_seconds_count[5m])`,
	} {
		require.NoError(t, checkExpr(expr), expr)
	}
	for expr, why := range map[string]string{
		`increase(webhook_event_failed_total[15m]) > 0`:        "metric webhook_event_failed_total is not exported",
		`rate(webhook_events_total{state="failed"}[5m])`:       "has no label state",
		`rate(webhook_events_total{status="FAILED"}[5m])`:      `is never "FAILED"`,
		`rate(http_request_duration_seconds[5m])`:              "http_request_duration_seconds is not exported",
		`sum by (tier) (rate(http_requests_total[5m]))`:        "grouping label tier",
		`river_jobs_available{queue="uploads"}`:                `is never "uploads"`,
		`sum(rate(graphql_errors_total{code="TOO_SLOW"}[5m]))`: `is never "TOO_SLOW"`,
		`rate(http_requests_total{handler="graphql"[5m])`:      "bad label matcher",
		`vector(1)`: "selects no metric",
		`sum(rate(rate_limit_refusals_total{tier="purchase", reason="x"}[1m]))`: "has no label reason",
	} {
		err := checkExpr(expr)
		require.Error(t, err, expr)
		require.Contains(t, err.Error(), why, expr)
	}
}

// With promtool installed (Debian's prometheus package has it), Prometheus itself checks the
// rules' syntax, runs their unit tests (alerts_test.yml: each alert fires on the series it is
// about, with its labels and annotations, and stays quiet otherwise) and checks the example
// Prometheus configuration.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH (apt-get install prometheus provides it); TestAlertRules checks the rules without it")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
		{"check", "config", "prometheus.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}

// configVariables are the environment variables the service reads: the names internal/config
// reads (its string literals that look like variable names), the Go runtime's GOGC and
// GOMEMLIMIT (internal/app.TuneGC), and OpenTelemetry's standard OTEL_* variables, which its SDK
// reads itself.
func configVariables(t *testing.T) func(string) bool {
	t.Helper()
	names := map[string]bool{"GOGC": true, "GOMEMLIMIT": true}
	files, err := filepath.Glob("../internal/config/*.go")
	require.NoError(t, err)
	variable := regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && len(s) >= 3 && variable.MatchString(s) {
					names[s] = true
				}
			}
			return true
		})
	}
	require.True(t, names["DATABASE_URL"] && names["HTTP_ADDR"], "internal/config's variable names are found")
	return func(name string) bool { return names[name] || strings.HasPrefix(name, "OTEL_") }
}

// compose is as much of a Compose file as the test reads.
type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       map[string]string `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
		ReadOnly bool `yaml:"read_only"`
	} `yaml:"services"`
}

// deploy/docker-compose.yml runs at least two instances of the image on PostgreSQL 15 and Redis,
// on different ports, each set up only with variables the service reads, health-checked on
// /readyz, behind a load balancer and a Prometheus that name every instance.
func TestCompose(t *testing.T) {
	var c compose
	require.NoError(t, yaml.Unmarshal(readFile(t, "docker-compose.yml"), &c))
	require.True(t, strings.HasPrefix(c.Services["postgres"].Image, "postgres:15"), "PostgreSQL 15: %q", c.Services["postgres"].Image)
	require.True(t, strings.HasPrefix(c.Services["redis"].Image, "redis:"), "Redis: %q", c.Services["redis"].Image)
	known := configVariables(t)
	caddy := string(readFile(t, "Caddyfile"))
	prom := string(readFile(t, "prometheus/prometheus.yml"))
	var instances []string
	hostPorts := map[string]string{}
	for name, s := range c.Services {
		if s.Build == nil {
			continue
		}
		instances = append(instances, name)
		require.Equal(t, "Dockerfile", s.Build["dockerfile"], name)
		for v := range s.Environment {
			require.True(t, known(v), "%s sets %s, which the service does not read (internal/config)", name, v)
		}
		env := s.Environment
		require.Equal(t, "production", env["ENV"], name)
		require.True(t, strings.HasPrefix(env["DATABASE_URL"], "postgres://") && strings.Contains(env["DATABASE_URL"], "@postgres:5432/"), name)
		require.True(t, strings.HasPrefix(env["REDIS_URL"], "redis://redis:"), "%s shares rate limits through Redis", name)
		require.True(t, strings.HasPrefix(env["HTTP_ADDR"], "0.0.0.0:"), "%s listens outside its container", name)
		require.NotEmpty(t, env["JWT_SECRET"], name)
		require.NotEmpty(t, env["TRUSTED_PROXIES"], "%s believes the load balancer's X-Forwarded-For", name)
		require.Equal(t, []string{"CMD", "/leadmarket", "health"}, s.Healthcheck.Test, "%s is health-checked on /readyz", name)
		require.Equal(t, "service_healthy", s.DependsOn["postgres"].Condition, name)
		require.True(t, s.ReadOnly, name)
		require.Len(t, s.Ports, 1, name)
		hostPort := s.Ports[0][:strings.LastIndex(s.Ports[0], ":")]
		require.NotContains(t, hostPorts, hostPort, "%s and %s publish the same port", name, hostPorts[hostPort])
		hostPorts[hostPort] = name
		require.Contains(t, caddy, name+":8080", "the load balancer sends to %s", name)
		require.Contains(t, prom, name+":9090", "Prometheus scrapes %s", name)
	}
	require.GreaterOrEqual(t, len(instances), 2, "two instances at least")
	require.Contains(t, caddy, "health_uri /readyz")
}

// The Dockerfile is multi-stage, ends on distroless or scratch as a non-root user running
// `leadmarket serve`, and builds the binary with the very command .ci/run runs when there is no
// Docker engine.
func TestDockerfile(t *testing.T) {
	df := string(readFile(t, "../Dockerfile"))
	var froms []string
	var build string
	for _, line := range strings.Split(df, "\n") {
		switch {
		case strings.HasPrefix(line, "FROM "):
			froms = append(froms, line)
		case strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build"):
			build = strings.TrimPrefix(line, "RUN ")
		}
	}
	require.GreaterOrEqual(t, len(froms), 2, "multi-stage")
	last := froms[len(froms)-1]
	require.True(t, strings.Contains(last, "distroless") || strings.Contains(last, " scratch"), last)
	require.Regexp(t, `(?m)^USER nonroot`, df)
	require.Regexp(t, `(?m)^ENTRYPOINT \["/leadmarket"\]$`, df)
	require.Regexp(t, `(?m)^CMD \["serve"\]$`, df)
	require.True(t, strings.HasPrefix(build, "CGO_ENABLED=0 go build ") && strings.HasSuffix(build, " ./cmd/leadmarket"), build)
	out := regexp.MustCompile(`-o (\S+)`).FindStringSubmatch(build)
	require.NotNil(t, out, build)
	require.Contains(t, df, "COPY --from=build /src/"+out[1]+" /leadmarket")
	require.Contains(t, string(readFile(t, "../.ci/run")), build, ".ci/run builds what the image builds")
	ignore := string(readFile(t, "../.dockerignore"))
	require.Contains(t, strings.Fields(ignore), ".git")
}
