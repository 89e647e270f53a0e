package ingest

// SetAfterBatch makes s call f after each committed batch; an error from f stops Process there,
// as if its process had died between two batches.
func SetAfterBatch(s *Service, f func(uploadID string) error) { s.afterBatch = f }
