package graph

import (
	"context"
	"slices"

	"github.com/graph-gophers/dataloader/v7"

	"github.com/leadmarket/leadmarket/graph/model"
	"github.com/leadmarket/leadmarket/internal/apperr"
)

// fillLeadRelations sets Partner on leads through the request's partner loader, one batch for
// all of them (skipped when the query does not select partner), so statements per request do not
// grow with the number of leads. PurchasedByMyWorkspace needs nothing here: the leads' own query
// computed it (the same SQL that decides whether contact data is shown).
func fillLeadRelations(ctx context.Context, leads []*model.Lead, withPartner bool) error {
	l := loadersFrom(ctx)
	if l == nil || len(leads) == 0 || !withPartner {
		return nil
	}
	ids := make([]string, len(leads))
	for i, ld := range leads {
		ids[i] = ld.PartnerID
	}
	if err := prime(ctx, l.Partner, l.partnerBatch, ids); err != nil {
		return err
	}
	for _, ld := range leads {
		var err error
		if ld.Partner, err = l.Partner.Load(ctx, ld.PartnerID)(); err != nil {
			return err
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
