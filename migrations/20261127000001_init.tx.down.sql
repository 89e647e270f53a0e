DROP TABLE IF EXISTS security_events, audit_logs, idempotency_keys, partner_earnings, credit_ledger,
    credit_balances, credit_packages, lead_purchases, leads, partner_members, partners,
    workspace_members, workspaces, users CASCADE;

--bun:split

DROP FUNCTION IF EXISTS ensure_audit_partitions(timestamptz, integer), forbid_change(),
    leads_set_hash_key(), lead_hash_key(text, text, text);
