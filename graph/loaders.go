package graph

import (
	"context"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/graph-gophers/dataloader/v7"

	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/apperr"
	"github.com/leadmarket/leadmarket/internal/auth"
	"github.com/leadmarket/leadmarket/internal/marketplace"
)

// Loaders batch relation lookups of one request: each runs one statement per batch, whatever the
// page size.
type Loaders struct {
	// Partner loads partners by id.
	Partner *dataloader.Loader[string, *model.Partner]
	// Lead loads leads by id as the caller sees them (masked unless bought).
	Lead *dataloader.Loader[string, *model.Lead]

	// Attempts loads webhook events' attempt logs by event id.
	Attempts *dataloader.Loader[string, []*model.WebhookAttempt]

	// User loads users by id (workspace leads' assignees).
	User *dataloader.Loader[string, *model.User]

	partnerBatch func(context.Context, []string) []*dataloader.Result[*model.Partner]
}

type loadersKey struct{}

// loaderWait is how long a loader gathers keys before it runs its batch. gqlgen resolves a
// list's fields concurrently, so a page's keys arrive within microseconds of each other.
const loaderWait = 500 * time.Microsecond

// withLoaders gives every operation fresh Loaders for its caller: an HTTP request's one
// operation, and each operation sent over a WebSocket, which must neither see what an earlier one
// cached nor keep it for the life of the connection.
func withLoaders(r *Resolver) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		return next(context.WithValue(ctx, loadersKey{}, newLoaders(r, auth.CallerFrom(ctx))))
	}
}

func loadersFrom(ctx context.Context) *Loaders {
	l, _ := ctx.Value(loadersKey{}).(*Loaders)
	return l
}

func newLoaders(r *Resolver, c *auth.Caller) *Loaders {
	userID := ""
	if c != nil {
		userID = c.UserID
	}
	partnerBatch := func(ctx context.Context, ids []string) []*dataloader.Result[*model.Partner] {
		ps, err := r.PartnerService.ByIDs(ctx, ids)
		byID := make(map[string]*model.Partner, len(ps))
		for _, p := range ps {
			byID[p.ID] = &model.Partner{ID: p.ID, Name: p.Name}
		}
		return results(ids, byID, err, notFound("partner"))
	}
	leadBatch := func(ctx context.Context, ids []string) []*dataloader.Result[*model.Lead] {
		ls, err := r.MarketplaceService.LeadsByIDs(ctx, marketplace.Viewer{UserID: userID}, ids)
		byID := make(map[string]*model.Lead, len(ls))
		nodes := make([]*model.Lead, len(ls))
		for i, l := range ls {
			nodes[i] = toLead(l)
			byID[l.ID] = nodes[i]
		}
		if err == nil {
			err = fillLeadRelations(ctx, nodes, true)
		}
		return results(ids, byID, err, notFound("lead"))
	}
	attemptsBatch := func(ctx context.Context, ids []string) []*dataloader.Result[[]*model.WebhookAttempt] {
		byEvent, err := r.BillingService.Attempts(ctx, ids)
		out := make([]*dataloader.Result[[]*model.WebhookAttempt], len(ids))
		for i, id := range ids {
			as := make([]*model.WebhookAttempt, len(byEvent[id]))
			for j, a := range byEvent[id] {
				as[j] = &model.WebhookAttempt{Attempt: a.Attempt, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt, Error: a.Error}
			}
			out[i] = &dataloader.Result[[]*model.WebhookAttempt]{Data: as, Error: err}
		}
		return out
	}
	userBatch := func(ctx context.Context, ids []string) []*dataloader.Result[*model.User] {
		us, err := r.PipelineService.Users(ctx, ids)
		byID := make(map[string]*model.User, len(us))
		for _, u := range us {
			byID[u.ID] = &model.User{ID: u.ID, Email: u.Email, IsPlatformAdmin: u.IsPlatformAdmin}
		}
		return results(ids, byID, err, notFound("user"))
	}
	return &Loaders{
		User:         dataloader.NewBatchedLoader(userBatch, dataloader.WithWait[string, *model.User](loaderWait)),
		Attempts:     dataloader.NewBatchedLoader(attemptsBatch, dataloader.WithWait[string, []*model.WebhookAttempt](loaderWait)),
		Partner:      dataloader.NewBatchedLoader(partnerBatch, dataloader.WithWait[string, *model.Partner](loaderWait)),
		Lead:         dataloader.NewBatchedLoader(leadBatch, dataloader.WithWait[string, *model.Lead](loaderWait)),
		partnerBatch: partnerBatch,
	}
}

func results[V any](keys []string, byID map[string]V, err error, missing func(string) error) []*dataloader.Result[V] {
	out := make([]*dataloader.Result[V], len(keys))
	for i, k := range keys {
		v, ok := byID[k]
		switch {
		case err != nil:
			out[i] = &dataloader.Result[V]{Error: err}
		case !ok:
			out[i] = &dataloader.Result[V]{Error: missing(k)}
		default:
			out[i] = &dataloader.Result[V]{Data: v}
		}
	}
	return out
}

func notFound(kind string) func(string) error {
	return func(id string) error { return apperr.New(apperr.NotFound, "%s %s not found", kind, id) }
}
