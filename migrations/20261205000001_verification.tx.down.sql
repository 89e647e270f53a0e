DROP FUNCTION IF EXISTS verify_take_slot(integer, integer, integer);
DROP TABLE IF EXISTS bounce_reports;
DROP TABLE IF EXISTS lead_verifications;
DROP INDEX IF EXISTS leads_verified_at_idx;
DROP INDEX IF EXISTS leads_verification_due_idx;
ALTER TABLE leads DROP COLUMN IF EXISTS verification_lease;
ALTER TABLE leads DROP COLUMN IF EXISTS verification_due_at;
ALTER TABLE leads DROP COLUMN IF EXISTS verification_attempts;
ALTER TABLE leads DROP COLUMN IF EXISTS verified_at;
