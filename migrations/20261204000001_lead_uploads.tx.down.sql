DROP TABLE IF EXISTS lead_rejections, lead_upload_keys, lead_upload_rows, lead_uploads;
