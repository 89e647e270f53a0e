package metrics

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"
)

// DBStatsCollector reports a database/sql pool's sql.DBStats at scrape time under the names
// db_pool_*: connections open, in use, idle and the most allowed, and how often and how long
// callers waited for a connection. It reads counters the pool keeps; a scrape costs no query.
type DBStatsCollector struct {
	db                         *sql.DB
	open, inUse, idle, maxOpen *prometheus.Desc
	waitCount, waitDuration    *prometheus.Desc
}

// NewDBStatsCollector returns the collector of db's pool.
func NewDBStatsCollector(db *sql.DB) *DBStatsCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &DBStatsCollector{
		db:           db,
		open:         d("db_pool_open_connections", "Connections the pool holds, in use or idle."),
		inUse:        d("db_pool_in_use_connections", "Connections in use."),
		idle:         d("db_pool_idle_connections", "Idle connections."),
		maxOpen:      d("db_pool_max_open_connections", "The most connections the pool may open (DB_MAX_CONNS)."),
		waitCount:    d("db_pool_wait_count_total", "Times a caller waited for a connection."),
		waitDuration: d("db_pool_wait_duration_seconds_total", "Time callers spent waiting for a connection."),
	}
}

// Describe implements prometheus.Collector.
func (c *DBStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.open, c.inUse, c.idle, c.maxOpen, c.waitCount, c.waitDuration} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *DBStatsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.Stats()
	ch <- prometheus.MustNewConstMetric(c.open, prometheus.GaugeValue, float64(s.OpenConnections))
	ch <- prometheus.MustNewConstMetric(c.inUse, prometheus.GaugeValue, float64(s.InUse))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.Idle))
	ch <- prometheus.MustNewConstMetric(c.maxOpen, prometheus.GaugeValue, float64(s.MaxOpenConnections))
	ch <- prometheus.MustNewConstMetric(c.waitCount, prometheus.CounterValue, float64(s.WaitCount))
	ch <- prometheus.MustNewConstMetric(c.waitDuration, prometheus.CounterValue, s.WaitDuration.Seconds())
}
