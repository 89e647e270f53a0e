// Package lead holds the lead domain: contact normalisation and the dedup key (DESIGN §6) that
// the application and the database's leads_hash_key trigger must agree on.
package lead
