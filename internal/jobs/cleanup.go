package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/riverqueue/river"
)

// CleanupFunc deletes one kind of expired data and returns how many rows went.
type CleanupFunc func(ctx context.Context) (int64, error)

// CleanupArgs is the periodic job that runs one named CleanupFunc.
type CleanupArgs struct {
	Name string `json:"name"`
}

// Kind names the job.
func (CleanupArgs) Kind() string { return "cleanup" }

// InsertOpts keeps one cleanup of each name queued per hour.
func (CleanupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByPeriod: time.Hour}}
}

// CleanupWorker runs the registered clean-ups by name.
type CleanupWorker struct {
	river.WorkerDefaults[CleanupArgs]
	funcs  map[string]CleanupFunc
	logger *slog.Logger
}

// NewCleanupWorker returns a worker for funcs (by name).
func NewCleanupWorker(funcs map[string]CleanupFunc, logger *slog.Logger) *CleanupWorker {
	if logger == nil {
		logger = slog.Default()
	}
	return &CleanupWorker{funcs: funcs, logger: logger}
}

// Work runs the clean-up the job names; an unknown name is cancelled, not retried.
func (w *CleanupWorker) Work(ctx context.Context, job *river.Job[CleanupArgs]) error {
	fn, ok := w.funcs[job.Args.Name]
	if !ok {
		return river.JobCancel(fmt.Errorf("no clean-up named %q", job.Args.Name))
	}
	n, err := fn(ctx)
	if err != nil {
		return fmt.Errorf("clean-up %s: %w", job.Args.Name, err)
	}
	if n > 0 {
		w.logger.InfoContext(ctx, "cleaned up", "name", job.Args.Name, "rows", n)
	}
	return nil
}

// PeriodicCleanups schedules every clean-up in funcs every interval (and at start).
func PeriodicCleanups(funcs map[string]CleanupFunc, interval time.Duration) []*river.PeriodicJob {
	names := make([]string, 0, len(funcs))
	for name := range funcs {
		names = append(names, name)
	}
	sort.Strings(names)
	jobs := make([]*river.PeriodicJob, len(names))
	for i, name := range names {
		jobs[i] = river.NewPeriodicJob(river.PeriodicInterval(interval),
			func() (river.JobArgs, *river.InsertOpts) { return CleanupArgs{Name: name}, nil },
			&river.PeriodicJobOpts{RunOnStart: true})
	}
	return jobs
}
