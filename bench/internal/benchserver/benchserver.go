// Package benchserver runs the real server, `leadmarket serve` built from ./cmd/leadmarket, as a
// process of its own for a benchmark (so the benchmark's own work does not count in its memory or
// CPU), and samples that process's resident memory from /proc.
package benchserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a running `leadmarket serve`.
type Server struct {
	// URL is the server's base URL, such as http://127.0.0.1:41234.
	URL string
	cmd *exec.Cmd
	// remove deletes the binary Start built (nil for StartBinary's).
	remove func()
}

// Start builds the binary (run from the repository's root) and serves dbURL on a loopback port
// with JWT_SECRET secret, ENV=development, warnings-only logs, rate limits off, and env (NAME=value)
// on top; it returns once /readyz answers 200.
func Start(ctx context.Context, dbURL, secret string, env ...string) (*Server, error) {
	bin, remove, err := Build(ctx)
	if err != nil {
		return nil, err
	}
	s, err := StartBinary(ctx, bin, dbURL, secret, env...)
	if err != nil {
		remove()
		return nil, err
	}
	s.remove = remove
	return s, nil
}

// Build builds `leadmarket` (run from the repository's root) into a temporary directory, for
// StartBinary to run as many servers as a benchmark needs; remove deletes it.
func Build(ctx context.Context) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "benchserver-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { _ = os.RemoveAll(dir) }
	bin = filepath.Join(dir, "leadmarket")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/leadmarket")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		remove()
		return "", nil, fmt.Errorf("build the server (run from the repository root): %w", err)
	}
	return bin, remove, nil
}

// StartBinary is Start with a binary Build made (which Stop leaves in place).
func StartBinary(ctx context.Context, bin, dbURL, secret string, env ...string) (*Server, error) {
	s := &Server{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	s.cmd = exec.Command(bin, "serve")
	s.cmd.Env = append(append(os.Environ(), "ENV=development", "DATABASE_URL="+dbURL, "HTTP_ADDR="+addr,
		"JWT_SECRET="+secret, "LOG_LEVEL=warn", "RATE_LIMITS_ENABLED=false"), env...)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.URL = "http://" + addr
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ctx.Err() != nil {
			break
		}
		if res, err := http.Get(s.URL + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
	}
	s.Stop()
	return nil, errors.New("the server did not become ready in 60 s")
}

// PID is the server process's id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop shuts the server down (SIGTERM, then a kill after 30 s) and removes the binary Start built.
func (s *Server) Stop() {
	defer func() {
		if s.remove != nil {
			s.remove()
		}
	}()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
	}
}

// PeakRSS samples a process's resident memory.
type PeakRSS struct {
	mu   sync.Mutex
	peak int64
}

// Watch samples pid's RSS every 20 ms until the returned stop is called.
func (p *PeakRSS) Watch(pid int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if rss := RSS(pid); rss > 0 {
				p.mu.Lock()
				p.peak = max(p.peak, rss)
				p.mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// Max is the highest RSS sampled, in bytes.
func (p *PeakRSS) Max() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak
}

// RSS is pid's resident set size in bytes (VmRSS in /proc/PID/status), 0 if unreadable.
func RSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
