package graph

import (
	"context"
	"errors"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/leadmarket/leadmarket/graph/gqlhttp"
	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/audit"
	"github.com/leadmarket/leadmarket/internal/live"
	"github.com/leadmarket/leadmarket/internal/marketplace"
)

// relay maps a live stream to a subscription's channel; a stream ended by an error (such as
// SUBSCRIBER_TOO_SLOW) sends that error, coded, as the subscription's last message.
func relay[T, M any](ctx context.Context, s live.Stream[T], err error, to func(T) M) (<-chan M, error) {
	if err != nil {
		return nil, err
	}
	out := make(chan M)
	go func() {
		defer close(out)
		for v := range s.C {
			select {
			case out <- to(v):
			case <-ctx.Done():
				return
			}
		}
		if err := s.Err(); err != nil {
			transport.AddSubscriptionError(ctx, subscriptionError(ctx, err))
		}
	}()
	return out, nil
}

// subscriptionError presents err with its code, as the error presenter does for operations.
func subscriptionError(ctx context.Context, err error) *gqlerror.Error {
	gerr := &gqlerror.Error{Message: err.Error(), Path: graphql.GetPath(ctx)}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		gerr.Message = ae.Message
		gerr.Extensions = map[string]any{"code": string(ae.Code)}
		gqlhttp.CountSubscriptionError(ctx, string(ae.Code))
	}
	return gerr
}

func toSecurityEvent(e audit.Security) *model.SecurityEvent {
	details := map[string]any(e.Details)
	if details == nil {
		details = map[string]any{}
	}
	return &model.SecurityEvent{
		ID: e.ID, OccurredAt: e.OccurredAt, Kind: e.Kind, RiskLevel: model.RiskLevel(e.RiskLevel),
		UserID: optional(e.UserID), WorkspaceID: optional(e.WorkspaceID), IP: e.IP, UserAgent: e.UserAgent,
		RequestID: e.RequestID, Operation: e.Operation, Details: details,
	}
}

func toLeadPurchaseEvent(c marketplace.CartEvent) *model.LeadPurchaseEvent {
	ps := make([]*model.LeadPurchase, len(c.Purchases))
	for i, p := range c.Purchases {
		ps[i] = &model.LeadPurchase{ID: p.ID, CreditsSpent: int(p.CreditsSpent), CreatedAt: p.CreatedAt, LeadID: p.LeadID}
	}
	return &model.LeadPurchaseEvent{
		CartID: c.CartID, WorkspaceID: c.WorkspaceID, Purchases: ps, CreditsSpent: int(c.CreditsSpent), OccurredAt: c.OccurredAt,
	}
}

func toMarketplaceStats(s live.Stats) *model.MarketplaceStats {
	return &model.MarketplaceStats{
		At: s.At, LeadsActive: s.LeadsActive, LeadsSoldToday: s.LeadsSoldToday, PurchasesToday: s.PurchasesToday,
		CreditsSpentToday: int(s.CreditsSpentToday), CreditsPurchasedToday: int(s.CreditsPurchasedToday),
		UploadsInProgress: s.UploadsInProgress, VerificationPending: s.VerificationPending,
		WebhookEventsFailed: s.WebhookEventsFailed,
	}
}
