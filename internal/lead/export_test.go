package lead

// SetFacetSampling sets the sampling thresholds of FacetsOf for a test and returns a function
// that restores them: a test table of thousands of leads then takes the sampling path that
// tables of millions take.
func SetFacetSampling(sampleRows, exactBelow, scanRows int) (restore func()) {
	s, e, c := facetSampleRows, facetExactBelow, facetScanRows
	facetSampleRows, facetExactBelow, facetScanRows = sampleRows, exactBelow, scanRows
	return func() { facetSampleRows, facetExactBelow, facetScanRows = s, e, c }
}

// WalkRows is walkRows, the most rows the first step of ListSellable reads.
const WalkRows = walkRows
