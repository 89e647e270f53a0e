DROP TABLE IF EXISTS export_chunks, exports, workspace_leads;
