package ingest

import (
	"sort"
	"strconv"
	"strings"
)

// rejectionColumns lead every row of a rejections download, before the file's own columns.
var rejectionColumns = []string{"row_number", "reason", "field", "detail"}

// RejectionsCSVHeader returns the header row of an upload's rejections download: row_number,
// reason, field, detail, then the file's own column names in file order. Write it, like the
// rows, through csvx.Writer: the names and values are the partner's and may start with "=".
func RejectionsCSVHeader(h *Header) []string {
	return append(append(make([]string, 0, len(rejectionColumns)+len(h.Names)), rejectionColumns...), h.Names...)
}

// RejectionsCSVRecord returns rej as a row of that download, reusing buf: its four columns, then
// its raw values under the file's columns (a malformed row's extra values after them).
func RejectionsCSVRecord(rej Rejection, buf []string) []string {
	buf = append(buf[:0], strconv.Itoa(rej.RowNumber), string(rej.Reason), rej.Field, rej.Detail)
	return append(buf, rej.Raw...)
}

// RawValues is RawMap's inverse: the values of a raw map (as stored with a rejection) in file
// order, for RejectionsCSVRecord. Keys the header does not have ("column_N" of a malformed row's
// extra values) follow in the order of N.
func (h *Header) RawValues(m map[string]string) []string {
	values := make([]string, 0, len(m))
	last := -1
	for i, k := range h.Keys {
		if v, ok := m[k]; ok {
			for len(values) < i {
				values = append(values, "")
			}
			values = append(values, v)
			last = i
		}
	}
	values = values[:last+1]
	if len(m) == len(values) {
		return values
	}
	known := make(map[string]bool, len(h.Keys))
	for _, k := range h.Keys {
		known[k] = true
	}
	type extra struct {
		pos int
		key string
	}
	var extras []extra
	for k := range m {
		if known[k] {
			continue
		}
		pos := 1 << 30
		if n, ok := strings.CutPrefix(k, "column_"); ok {
			n, _, _ = strings.Cut(n, "_")
			if p, err := strconv.Atoi(n); err == nil {
				pos = p
			}
		}
		extras = append(extras, extra{pos, k})
	}
	sort.Slice(extras, func(i, j int) bool {
		if extras[i].pos != extras[j].pos {
			return extras[i].pos < extras[j].pos
		}
		return extras[i].key < extras[j].key
	})
	for len(values) < len(h.Keys) {
		values = append(values, "")
	}
	for _, e := range extras {
		values = append(values, m[e.key])
	}
	return values
}
