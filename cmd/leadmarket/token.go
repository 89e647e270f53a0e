package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/config"
	"github.com/leadmarket/leadmarket/internal/seed"
	"github.com/leadmarket/leadmarket/internal/user"
)

func tokenCmd(ctx context.Context, cfg config.Config, logger *slog.Logger, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	email := fs.String("email", "", "the user's e-mail (required)")
	admin := fs.Bool("admin", false, "make the user a platform admin (writes the flag to the database)")
	mfa := fs.Bool("mfa", false, "mark the session as multi-factor (aal2)")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	e := strings.ToLower(strings.TrimSpace(*email))
	if !strings.Contains(e, "@") {
		return errors.New("token: --email is required")
	}
	if *ttl <= 0 {
		return errors.New("token: --ttl must be positive")
	}
	subject := seed.SubjectForEmail(e)
	if *admin {
		// Platform admin is a flag on the user, not a claim: set it where the server will read it.
		// A user who signed in before keeps their own subject, or the token would not be theirs.
		bdb, _, closeDB, err := openDatabase(ctx, cfg, logger)
		if err != nil {
			return err
		}
		err = user.SetPlatformAdmin(ctx, bdb, e, true)
		var existing string
		if err == nil {
			existing, err = user.SubjectOf(ctx, bdb, e)
		}
		closeDB()
		if err != nil {
			return err
		}
		if existing != "" {
			subject = existing
		}
	}
	tok, err := auth.NewTokens(cfg.JWTSecret).Issue(subject, e, *mfa, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
