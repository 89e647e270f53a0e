package billing_test

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/billing"
	"github.com/leadmarket/leadmarket/internal/dbtest"
)

// stripeMockVersion is the stripe-mock the tests install when it is missing.
const stripeMockVersion = "v0.203.0"

// startStripeMock runs stripe-mock on a loopback port (installing it with go install when it
// is not on PATH or in GOPATH/bin) and returns its base URL.
func startStripeMock(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("stripe-mock")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		bin = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "stripe-mock")
		if _, err := os.Stat(bin); err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(ctx, "go", "install", "github.com/stripe/stripe-mock@"+stripeMockVersion).CombinedOutput()
			require.NoError(t, err, "install stripe-mock: %s", out)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := exec.Command(bin, "-http-addr", addr)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	go func() { // drain its log
		s := bufio.NewScanner(stdout)
		for s.Scan() {
		}
	}()
	require.Eventually(t, func() bool {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "stripe-mock did not start")
	return "http://" + addr
}

func TestPurchaseCredits_CreatesCheckoutSessionOnStripeMock(t *testing.T) {
	t.Parallel()
	stripeURL := startStripeMock(t)
	e := newTxEnv(t, map[string]string{"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_API_URL": stripeURL})
	ctx := context.Background()
	ws, owner := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	member := dbtest.CreateUser(t, e.db, dbtest.UserOpts{})
	dbtest.AddMember(t, e.db, ws, member.ID, "MEMBER")
	var pkg, inactive string
	require.NoError(t, e.db.NewRaw(`INSERT INTO credit_packages (name, credits, price_cents, currency) VALUES ('Growth', 500, 19900, 'usd') RETURNING id`).Scan(ctx, &pkg))
	require.NoError(t, e.db.NewRaw(`INSERT INTO credit_packages (name, credits, price_cents, currency, active) VALUES ('Old', 5, 100, 'usd', false) RETURNING id`).Scan(ctx, &inactive))
	as := func(u dbtest.User) context.Context {
		return auth.WithCaller(ctx, &auth.Caller{UserID: u.ID, Email: u.Email})
	}
	in := billing.CheckoutInput{WorkspaceID: ws, PackageID: pkg, SuccessURL: "https://app.example/ok?s={CHECKOUT_SESSION_ID}",
		CancelURL: "https://app.example/cancel", IdempotencyKey: "buy-1"}

	co, err := e.app.Billing.PurchaseCredits(as(owner), &auth.Caller{UserID: owner.ID, Email: owner.Email}, in)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(co.SessionID, "cs_"), co.SessionID)
	require.NotEmpty(t, co.CheckoutURL)
	require.Equal(t, "PENDING", co.Order.Status)
	require.Equal(t, int64(500), co.Order.Credits)
	require.Equal(t, int64(19900), co.Order.AmountCents, "the amount comes from the package")
	require.Equal(t, co.SessionID, scalar[string](t, e.db, "SELECT checkout_session_id FROM credit_orders WHERE id = ?", co.Order.ID))

	again, err := e.app.Billing.PurchaseCredits(as(owner), &auth.Caller{UserID: owner.ID, Email: owner.Email}, in)
	require.NoError(t, err)
	require.Equal(t, co.SessionID, again.SessionID, "same key, same session")
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM credit_orders WHERE workspace_id = ?", ws))

	for name, tc := range map[string]struct {
		caller dbtest.User
		in     billing.CheckoutInput
		code   apperr.Code
	}{
		"member":           {member, billing.CheckoutInput{WorkspaceID: ws, PackageID: pkg, SuccessURL: in.SuccessURL, CancelURL: in.CancelURL}, apperr.Forbidden},
		"inactive package": {owner, billing.CheckoutInput{WorkspaceID: ws, PackageID: inactive, SuccessURL: in.SuccessURL, CancelURL: in.CancelURL}, apperr.NotFound},
		"bad url":          {owner, billing.CheckoutInput{WorkspaceID: ws, PackageID: pkg, SuccessURL: "javascript:alert(1)", CancelURL: in.CancelURL}, apperr.InvalidInput},
		"key reused":       {owner, billing.CheckoutInput{WorkspaceID: ws, PackageID: inactive, SuccessURL: in.SuccessURL, CancelURL: in.CancelURL, IdempotencyKey: "buy-1"}, apperr.IdempotencyKeyReused},
	} {
		_, err := e.app.Billing.PurchaseCredits(as(tc.caller), &auth.Caller{UserID: tc.caller.ID, Email: tc.caller.Email}, tc.in)
		require.Equal(t, tc.code, apperr.CodeOf(err), "%s: %v", name, err)
	}
	require.Equal(t, 1, scalar[int](t, e.db, "SELECT count(*) FROM audit_logs WHERE action = 'credits.checkout_started' AND workspace_id = ?", ws))
}

func TestPurchaseCredits_StripeDownIsUnavailableNotInternal(t *testing.T) {
	t.Parallel()
	e := newTxEnv(t, map[string]string{"STRIPE_SECRET_KEY": "sk_test_123", "STRIPE_API_URL": "http://127.0.0.1:1"})
	ws, owner := dbtest.CreateWorkspace(t, e.db, dbtest.WorkspaceOpts{})
	var pkg string
	require.NoError(t, e.db.NewRaw(`INSERT INTO credit_packages (name, credits, price_cents, currency) VALUES ('x', 1, 100, 'usd') RETURNING id`).Scan(context.Background(), &pkg))
	c := &auth.Caller{UserID: owner.ID, Email: owner.Email}
	_, err := e.app.Billing.PurchaseCredits(auth.WithCaller(context.Background(), c), c, billing.CheckoutInput{
		WorkspaceID: ws, PackageID: pkg, SuccessURL: "https://a.example/s", CancelURL: "https://a.example/c", IdempotencyKey: "k"})
	require.Equal(t, apperr.Unavailable, apperr.CodeOf(err))
	require.Equal(t, "FAILED", scalar[string](t, e.db, "SELECT status FROM credit_orders WHERE workspace_id = ?", ws))
	require.Zero(t, scalar[int](t, e.db, "SELECT count(*) FROM idempotency_keys WHERE user_id = ?", owner.ID), "the key is free for a retry")
}
