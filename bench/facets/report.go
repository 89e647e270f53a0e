package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/leadmarket/leadmarket/bench/internal/benchdb"
	"github.com/leadmarket/leadmarket/internal/seed"
)

// stats are a distribution's figures.
type stats struct {
	n                  int
	p50, p90, p99, max time.Duration
}

func statsOf(ss []sample) stats {
	if len(ss) == 0 {
		return stats{}
	}
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = s.d
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return stats{n: len(ds), p50: at(0.50), p90: at(0.90), p99: at(0.99), max: ds[len(ds)-1]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }

// slowest returns the indexes of the k slowest samples, slowest first.
func slowest(ss []sample, k int) []int {
	idx := make([]int, len(ss))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(ss[b].d, ss[a].d) })
	return idx[:min(k, len(idx))]
}

func (r *sizeResult) print(k int) {
	fmt.Printf("\n== %d leads ==\n%s\n", r.leads, r.dbReport)
	fmt.Printf("%-28s %6s %9s %9s %9s %9s\n", "requests", "n", "p50", "p90", "p99", "max")
	row := func(name string, st stats) {
		fmt.Printf("%-28s %6d %9s %9s %9s %9s\n", name, st.n, ms(st.p50), ms(st.p90), ms(st.p99), ms(st.max))
	}
	pages := statsOf(r.pages())
	row("pages (1 and 4)", pages)
	row("  page 1", statsOf(r.first))
	row("  page 4 (3 cursors deep)", statsOf(r.deep))
	row("  pages 2-3 (walked)", statsOf(r.walk))
	if r.hasCounts {
		counted := statsOf(r.counted)
		row("page 1 + totalCount", counted)
		row("marketplaceFacets", statsOf(r.facet))
		exact := 0
		for _, s := range r.counted {
			if s.exact != nil && s.exact.IsExact {
				exact++
			}
		}
		fmt.Printf("totalCount exact in %d of %d answers; the warm-up's facets request (not measured): %s\n", exact, len(r.counted), ms(r.warmFacets))
		first := statsOf(r.first)
		fmt.Printf("targets: pages p50 < 10ms %s, p99 < 100ms %s, max < 250ms %s; totalCount p99 - page 1 p99 = %s (<= 20ms %s); facets p99 < 150ms %s\n",
			met(pages.p50 < 10*time.Millisecond), met(pages.p99 < 100*time.Millisecond), met(pages.max < 250*time.Millisecond),
			ms(counted.p99-first.p99), met(counted.p99-first.p99 <= 20*time.Millisecond),
			met(statsOf(r.facet).p99 < 150*time.Millisecond))
	} else {
		fmt.Println("this build has no totalCount or marketplaceFacets: pages only")
		fmt.Printf("targets: pages p50 < 10ms %s, p99 < 100ms %s, max < 250ms %s\n",
			met(pages.p50 < 10*time.Millisecond), met(pages.p99 < 100*time.Millisecond), met(pages.max < 250*time.Millisecond))
	}
	if r.checkFailures > 0 {
		fmt.Printf("CHECKS FAILED: %d\n", r.checkFailures)
		for _, f := range r.failures {
			fmt.Println("  " + f)
		}
	} else {
		fmt.Println("checks: every answer passed")
	}
	all := slices.Concat(r.first, r.walk, r.deep)
	fmt.Printf("the %d slowest pages:\n", k)
	for _, i := range slowest(all, k) {
		s := all[i]
		fmt.Printf("  %9s  %s %s page %d (%d leads)\n", ms(s.d), s.f, s.order, s.page, s.leads)
		for _, plan := range r.plans[i] {
			for _, line := range shape(plan) {
				fmt.Println("      " + line)
			}
		}
	}
	if r.hasCounts {
		fmt.Printf("the %d slowest facets:\n", k)
		for _, i := range slowest(r.facet, k) {
			fmt.Printf("  %9s  %s\n", ms(r.facet[i].d), r.facet[i].f)
		}
		fmt.Printf("the %d slowest pages with totalCount:\n", k)
		for _, i := range slowest(r.counted, k) {
			s := r.counted[i]
			fmt.Printf("  %9s  %s %s totalCount %+v\n", ms(s.d), s.f, s.order, *s.exact)
		}
	}
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// writeCost seeds o.writeLeads leads into a fresh database with every migration, and into one
// without the browse indexes, and prints both rates.
func writeCost(ctx context.Context, o options) error {
	fmt.Printf("\n== write cost: seed --demo of %d leads into a fresh database ==\n", o.writeLeads)
	var rates [2]float64
	for i, side := range []string{"every migration (all indexes)", "browse indexes dropped (baseline)"} {
		bdb, _, done, err := benchdb.Scratch(ctx, o.databaseURL, "lm_bench_facets_write", 4)
		if err != nil {
			return err
		}
		if i == 1 {
			var names []string
			if err := bdb.NewRaw(`SELECT indexname FROM pg_indexes WHERE tablename = 'leads'
				AND (indexname LIKE 'leads\_sellable\_%' OR indexname LIKE 'leads\_title\_%')`).Scan(ctx, &names); err != nil {
				done()
				return err
			}
			for _, n := range names {
				if _, err := bdb.ExecContext(ctx, "DROP INDEX "+n); err != nil {
					done()
					return err
				}
			}
			side += " [" + strings.Join(names, " ") + "]"
		}
		start := time.Now()
		res, err := seed.Demo(ctx, bdb, seed.Options{Leads: o.writeLeads})
		d := time.Since(start)
		done()
		if err != nil {
			return err
		}
		rates[i] = float64(res.Leads) / d.Seconds()
		fmt.Printf("%-40s %10s %9.0f rows/s\n", side, d.Round(time.Millisecond), rates[i])
	}
	fmt.Printf("ratio with/without the browse indexes (rows/s): %.2f\n", rates[0]/rates[1])
	return nil
}

// shape keeps the lines of an EXPLAIN ANALYZE that show its plan's shape: the nodes that ran,
// their index conditions, the rows they threw away, and the times.
func shape(plan string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimRight(plan, "\n"), "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.Contains(t, "never executed"):
		case strings.Contains(t, "(actual"), strings.HasPrefix(t, "Index Cond"), strings.HasPrefix(t, "Rows Removed"),
			strings.HasPrefix(t, "Recheck Cond"), strings.HasPrefix(t, "Heap Blocks"),
			strings.HasPrefix(t, "Planning Time"), strings.HasPrefix(t, "Execution Time"), strings.HasPrefix(t, "--"):
			if len(line) > 160 {
				line = line[:157] + "..."
			}
			out = append(out, line)
		}
	}
	return out
}

// writeSamples appends every measured request of r to the file at path, one tab-separated line
// each (size, kind, ms, order, page, filter, totalCount), for looking at more than the slowest.
func (r *sizeResult) writeSamples(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for kind, ss := range map[string][]sample{"page": slices.Concat(r.first, r.walk, r.deep), "counted": r.counted, "facets": r.facet} {
		for _, s := range ss {
			t := ""
			if s.exact != nil {
				t = fmt.Sprintf("%d exact=%t", s.exact.Value, s.exact.IsExact)
			}
			fmt.Fprintf(w, "%d\t%s\t%.2f\t%s\t%d\t%s\t%s\n", r.leads, kind, float64(s.d.Microseconds())/1000, s.order, s.page, s.f, t)
		}
	}
	return errors.Join(w.Flush(), f.Close())
}
