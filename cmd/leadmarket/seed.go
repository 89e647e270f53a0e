package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/ingest"
	"github.com/leadmarket/leadmarket/internal/jobs"
	"github.com/leadmarket/leadmarket/internal/seed"
)

// demoTokenTTL is how long the tokens printed by seed stay valid.
const demoTokenTTL = 30 * 24 * time.Hour

// seededUser is one line of `seed --json`: every key is always there, workspaceId and partnerId
// null for users without one.
type seededUser struct {
	Email       string  `json:"email"`
	Role        string  `json:"role"`
	WorkspaceID *string `json:"workspaceId"`
	PartnerID   *string `json:"partnerId"`
	Token       string  `json:"token"`
}

func seedCmd(ctx context.Context, cfg config.Config, logger *slog.Logger, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	demo := fs.Bool("demo", false, "write the deterministic demo data set")
	leads := fs.Int("leads", 10_000, "how many demo leads")
	asJSON := fs.Bool("json", false, `print {"users":[...]} as JSON`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*demo {
		return errors.New("seed: only --demo data exists; run `leadmarket seed --demo`")
	}
	if *leads < 0 {
		return errors.New("seed: --leads must not be negative")
	}
	bdb, _, closeDB, err := openDatabase(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	start := time.Now()
	res, err := seed.Demo(ctx, bdb, seed.Options{Leads: *leads, Logger: logger})
	if err != nil {
		return err
	}
	queue, err := jobs.NewQueue(bdb.DB)
	if err != nil {
		return err
	}
	uploads, err := seed.DemoUploads(ctx, ingest.NewService(bdb, queue, ingest.ServiceOptions{
		MaxRows: cfg.MaxUploadRows, Retention: cfg.UploadRetention, Logger: logger,
	}), res.Users)
	if err != nil {
		return err
	}
	logger.Info("demo data ready", "leads", res.Leads, "uploads", uploads, "took", time.Since(start).Round(time.Millisecond).String())
	tokens := auth.NewTokens(cfg.JWTSecret)
	users := make([]seededUser, 0, len(res.Users))
	for _, u := range res.Users {
		// Demo admins carry aal2 so they pass ADMIN_REQUIRE_MFA.
		tok, err := tokens.Issue(u.Subject, u.Email, u.IsPlatformAdmin, demoTokenTTL)
		if err != nil {
			return err
		}
		users = append(users, seededUser{Email: u.Email, Role: u.Role, WorkspaceID: orNil(u.WorkspaceID), PartnerID: orNil(u.PartnerID), Token: tok})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"users": users})
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EMAIL\tROLE\tWORKSPACE\tPARTNER")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Email, u.Role, deref(u.WorkspaceID), deref(u.PartnerID))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nTokens (valid 30 days; send as `Authorization: Bearer <token>`):")
	for _, u := range users {
		fmt.Fprintf(stdout, "%s\n  %s\n", u.Email, u.Token)
	}
	return nil
}

func orNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
