package live

import (
	"context"
	"time"

	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
)

// statsGroup is the subscribers of one interval: one computation per tick, shared by all.
type statsGroup struct {
	subs   map[chan Stats]struct{}
	cancel context.CancelFunc
}

// MarketplaceStats streams the dashboard figures every intervalSeconds (1–300): computed once per
// instance per interval and shared by every subscriber with that interval. Platform admins only.
// Errors: FORBIDDEN, INVALID_INPUT.
func (s *Service) MarketplaceStats(ctx context.Context, c *auth.Caller, intervalSeconds int) (Stream[Stats], error) {
	if err := c.AdminAccess(); err != nil {
		return Stream[Stats]{}, err
	}
	if intervalSeconds < 1 || intervalSeconds > 300 {
		return Stream[Stats]{}, apperr.New(apperr.InvalidInput, "intervalSeconds must be 1 to 300").With("field", "intervalSeconds")
	}
	ch := make(chan Stats, 1)
	s.statsMu.Lock()
	g := s.stats[intervalSeconds]
	if g == nil {
		gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		g = &statsGroup{subs: map[chan Stats]struct{}{}, cancel: cancel}
		s.stats[intervalSeconds] = g
		go s.tick(gctx, g, time.Duration(intervalSeconds)*time.Second)
	}
	g.subs[ch] = struct{}{}
	s.statsMu.Unlock()
	go func() {
		<-ctx.Done()
		s.statsMu.Lock()
		defer s.statsMu.Unlock()
		delete(g.subs, ch)
		close(ch)
		if len(g.subs) == 0 {
			g.cancel()
			delete(s.stats, intervalSeconds)
		}
	}()
	return Stream[Stats]{C: ch, Err: func() error { return nil }}, nil
}

// StatsComputed counts the stats computations so far.
func (s *Service) StatsComputed() int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.statsComputed
}

func (s *Service) tick(ctx context.Context, g *statsGroup, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := s.statsFunc(ctx)
		if err != nil {
			s.logger.ErrorContext(ctx, "marketplace stats", "err", err)
			continue
		}
		s.statsMu.Lock()
		s.statsComputed++
		for ch := range g.subs {
			// A snapshot: one not yet read is replaced by the newer one.
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- st:
			default:
			}
		}
		s.statsMu.Unlock()
	}
}
