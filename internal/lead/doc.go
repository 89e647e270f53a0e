// Package lead owns the leads table: the lead row, the rule that says whether a lead can still
// be sold, the browse reads (filters, keyset order, contact data masked in SQL), the lookups by
// id, the lock and buyer count of a sale, the inserts (an upload's set-based insert and dedup
// look-up by hash_key among them, dedup.go), the counts of a partner's leads, and contact
// normalisation with the dedup key (DESIGN §6) that the application and the database's
// leads_hash_key trigger must agree on. Every other package reads and writes leads through it.
package lead
