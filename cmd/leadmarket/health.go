package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/leadmarket/leadmarket/internal/config"
)

// healthCmd asks a running server's /readyz and fails unless it answers 200: the health check of
// a container image that has no shell or curl (the Dockerfile's HEALTHCHECK, docker-compose's
// healthcheck). By default it asks this container's own server at HTTP_ADDR.
func healthCmd(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	url := fs.String("url", "", "the URL to GET (default http://HTTP_ADDR/readyz, 127.0.0.1 for a wildcard host)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *url == "" {
		u, err := readyURL(cfg.HTTPAddr)
		if err != nil {
			return err
		}
		*url = u
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		reason := body.Reason
		if reason == "" {
			reason = resp.Status
		}
		return fmt.Errorf("health: %s is not ready: %s", *url, reason)
	}
	fmt.Fprintln(stdout, "ready")
	return nil
}

// readyURL is the /readyz URL of a server listening on addr (HTTP_ADDR); a wildcard or empty host
// is asked on the loopback address.
func readyURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return "", errors.New("health: HTTP_ADDR " + addr + " is not host:port")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
