package graph

import (
	"context"
	"slices"

	"github.com/graph-gophers/dataloader/v7"

	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/apperr"
)

// fillLeadRelations sets Partner and PurchasedByMyWorkspace on leads from the request's loaders:
// one partner batch for all of them (skipped when the query does not select partner), and the
// purchased flags primed from what the leads' own query computed for the same viewer (the SQL
// that decides whether contact data is shown), so the flag and the unmasking always agree and
// cost no statement. Statements per request therefore do not grow with the number of leads.
func fillLeadRelations(ctx context.Context, leads []*model.Lead, withPartner bool) error {
	l := loadersFrom(ctx)
	if l == nil || len(leads) == 0 {
		return nil
	}
	for _, ld := range leads {
		l.Purchased.Prime(ctx, viewerKey(ld.ViewerWorkspaceID, ld.ID), ld.ContactVisible)
	}
	if withPartner {
		ids := make([]string, len(leads))
		for i, ld := range leads {
			ids[i] = ld.PartnerID
		}
		if err := prime(ctx, l.Partner, l.partnerBatch, ids); err != nil {
			return err
		}
	}
	for _, ld := range leads {
		var err error
		if ld.PurchasedByMyWorkspace, err = l.Purchased.Load(ctx, viewerKey(ld.ViewerWorkspaceID, ld.ID))(); err != nil {
			return err
		}
		if withPartner {
			if ld.Partner, err = l.Partner.Load(ctx, ld.PartnerID)(); err != nil {
				return err
			}
		}
	}
	return nil
}

// prime runs batch once for the distinct keys and stores the results in loader, so the loads that
// follow find them cached: one statement, however the callers get scheduled.
func prime[V any](ctx context.Context, loader *dataloader.Loader[string, V],
	batch func(context.Context, []string) []*dataloader.Result[V], keys []string,
) error {
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	for i, res := range batch(ctx, keys) {
		if res.Error != nil {
			if apperr.CodeOf(res.Error) == apperr.Internal {
				return res.Error
			}
			continue // a missing row stays uncached and fails at its load, as it would unprimed
		}
		loader.Prime(ctx, keys[i], res.Data)
	}
	return nil
}
