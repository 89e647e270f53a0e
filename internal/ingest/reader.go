package ingest

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits of a file. MaxFieldChars is a validation rule (Validate); the others bound the memory a
// hostile or broken file can make the reader use.
const (
	// DefaultMaxRows is Options.MaxRows when it is zero: MAX_UPLOAD_ROWS's default.
	DefaultMaxRows = 1_000_000
	// DefaultMaxRowBytes is Options.MaxRowBytes when it is zero. A 1 MB field fits, so it can be
	// rejected as INVALID_VALUE like any other value that is too long.
	DefaultMaxRowBytes = 4 << 20
	// MaxColumns is the most columns a header row may have, and the most values kept of a row.
	MaxColumns = 1000
	// MaxValueBytes is the most bytes kept of one value (in Row.Values and so in raw); a longer
	// value is cut at a character boundary and ends in "…". Anything cut is longer than
	// MaxFieldChars, so cutting never changes whether a row is valid.
	MaxValueBytes = 4096
	// MaxFieldChars is the most characters a known column's value may have (INVALID_VALUE above).
	MaxFieldChars = 1000
)

// sniffBytes is how much of the file's start is looked at to recognise binary data and the
// delimiter; it is also the read buffer.
const sniffBytes = 64 << 10

// Options tune a Reader. The zero value is the production setting.
type Options struct {
	// MaxRows is the most data rows a file may have (blank rows not counted); one more fails
	// the file with CodeTooManyRows. Default DefaultMaxRows.
	MaxRows int
	// MaxRowBytes is the most bytes one row may take in the file; a larger row fails the file
	// with CodeRowTooLarge. Default DefaultMaxRowBytes.
	MaxRowBytes int
}

// Row is one data row as read from the file, before validation: what an upload stages.
type Row struct {
	// Number is the row as a spreadsheet shows it: the header is row 1 (when it is the first
	// line), a quoted field spanning lines is one row, and blank lines count as rows.
	Number int
	// Values are the row's fields in file order, at most MaxColumns of them, each cut to
	// MaxValueBytes.
	Values []string
	// FieldCount is how many fields the row had, before Values was capped.
	FieldCount int
	// Malformed, when not empty, says why the row could not be parsed as CSV (a stray quote);
	// Values then holds the fields read before the fault.
	Malformed string
}

// Reader reads a CSV upload row by row, holding one row (at most Options.MaxRowBytes) and a
// 64 KiB buffer in memory whatever the file's size. It is not safe for concurrent use.
type Reader struct {
	src      *guard
	csv      *csv.Reader
	header   *Header
	delim    rune
	base     int64 // bytes before what csv reads (a byte-order mark)
	maxRows  int
	maxBytes int64

	rows     int // data rows returned
	lastRow  int // row number of the last record read (header and blank rows included)
	lastLine int // line the last record read ended on
	peeked   *Row
	err      error // sticky: once the file failed, it stays failed
}

// NewReader reads the start of r: it strips a UTF-8 byte-order mark, recognises binary data,
// detects the delimiter (comma, semicolon or tab) from the header line, reads the header row
// and the first data row. Blank rows before the header are skipped. It fails with a *FileError
// (CodeNotCSV, CodeEmptyFile, CodeMissingColumns, CodeTooManyColumns, CodeRowTooLarge) when the
// file cannot be an upload, or with r's own error.
func NewReader(r io.Reader, opts Options) (*Reader, error) {
	if opts.MaxRows <= 0 {
		opts.MaxRows = DefaultMaxRows
	}
	if opts.MaxRowBytes <= 0 {
		opts.MaxRowBytes = DefaultMaxRowBytes
	}
	src := &guard{r: r, limit: -1}
	br := bufio.NewReaderSize(src, sniffBytes)
	rd := &Reader{src: src, maxRows: opts.MaxRows, maxBytes: int64(opts.MaxRowBytes)}

	window, err := br.Peek(sniffBytes)
	// A signature names what the file is better than the NUL byte the guard stopped at.
	if fe := sniffBinary(window); fe != nil {
		return nil, fe
	}
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, rd.fail(err)
	}
	if bytes.HasPrefix(window, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
		window = window[len(utf8BOM):]
		rd.base = int64(len(utf8BOM))
	}
	var in io.Reader = br
	if bytes.IndexByte(window, '\n') < 0 && bytes.IndexByte(window, '\r') >= 0 {
		// Lines ended by CR alone ("CSV (Macintosh)"): encoding/csv only splits on LF.
		in = crToLF{br}
	}
	rd.delim = detectDelimiter(window)
	rd.csv = csv.NewReader(in)
	rd.csv.Comma = rd.delim
	rd.csv.FieldsPerRecord = -1
	rd.csv.LazyQuotes = false

	var names []string
	for names == nil {
		rec, number, err := rd.read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fileErrorf(CodeEmptyFile, 0, "the file is empty")
			}
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, fileErrorf(CodeNotCSV, number, "the header row cannot be read as CSV: %s", describeParseError(pe))
			}
			return nil, err
		}
		if isBlank(rec) {
			continue
		}
		if len(rec) > MaxColumns {
			return nil, fileErrorf(CodeTooManyColumns, number,
				"the header row has %d columns; at most %d are accepted", len(rec), MaxColumns)
		}
		names = capValues(rec)
	}
	h, err := NewHeader(names)
	if err != nil {
		if fe, ok := AsFileError(err); ok {
			fe.Row = rd.lastRow
		}
		return nil, err
	}
	rd.header = h

	first, err := rd.next()
	if errors.Is(err, io.EOF) {
		return nil, fileErrorf(CodeEmptyFile, 0, "the file has a header row but no data rows")
	}
	if err != nil {
		return nil, err
	}
	rd.peeked = &first
	return rd, nil
}

// Header returns the file's header row.
func (r *Reader) Header() *Header { return r.header }

// Delimiter returns the field delimiter detected from the header line: ',', ';' or '\t'.
func (r *Reader) Delimiter() rune { return r.delim }

// RowsRead returns how many data rows Next has returned so far.
func (r *Reader) RowsRead() int {
	if r.peeked != nil {
		return r.rows - 1
	}
	return r.rows
}

// BytesRead returns how many bytes of the file have been consumed: progress for a client that
// knows the file's size.
func (r *Reader) BytesRead() int64 { return r.base + r.csv.InputOffset() }

// Next returns the next data row, skipping blank rows (every field empty or white space). At the
// end of the file it returns io.EOF. A row that is not valid CSV is returned with Malformed set;
// the file fails, with a *FileError, on bytes that are not UTF-8 or are binary (CodeNotCSV), a
// row over Options.MaxRowBytes (CodeRowTooLarge) or more than Options.MaxRows rows
// (CodeTooManyRows). After an error every call returns the same error.
func (r *Reader) Next() (Row, error) {
	if r.peeked != nil {
		row := *r.peeked
		r.peeked = nil
		return row, nil
	}
	return r.next()
}

func (r *Reader) next() (Row, error) {
	if r.err != nil {
		return Row{}, r.err
	}
	for {
		rec, number, err := r.read()
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			row, err := r.dataRow(rec, number)
			row.Malformed = describeParseError(pe)
			return row, err
		case err != nil:
			return Row{}, err
		case isBlank(rec):
			continue
		}
		return r.dataRow(rec, number)
	}
}

// dataRow counts a data row against MaxRows and caps what is kept of it.
func (r *Reader) dataRow(rec []string, number int) (Row, error) {
	r.rows++
	if r.rows > r.maxRows {
		return Row{}, r.fail(fileErrorf(CodeTooManyRows, number,
			"the file has more than %d rows; split it into several uploads", r.maxRows))
	}
	return Row{Number: number, Values: capValues(rec), FieldCount: len(rec)}, nil
}

// read reads one record and works out its spreadsheet row number. It returns *csv.ParseError
// with the partial record for a malformed row, *FileError for a file that must fail, io.EOF at
// the end and r's own errors as they are.
func (r *Reader) read() ([]string, int, error) {
	if r.err != nil {
		return nil, 0, r.err
	}
	// The bytes read ahead of what csv has consumed never exceed the buffers, so a row can take
	// MaxRowBytes before the guard stops it.
	r.src.limit = r.base + r.csv.InputOffset() + r.maxBytes + 2*sniffBytes
	rec, err := r.csv.Read()
	var pe *csv.ParseError
	switch {
	case errors.Is(err, io.EOF):
		r.err = io.EOF
		return nil, 0, io.EOF
	case errors.As(err, &pe):
		number := r.advance(pe.StartLine, pe.Line)
		if fe := checkText(rec, number); fe != nil {
			return nil, number, r.fail(fe)
		}
		return rec, number, err
	case errors.Is(err, errRowTooLarge):
		return nil, 0, r.fail(fileErrorf(CodeRowTooLarge, r.lastRow+1,
			"a row starting at or after row %d is larger than %d bytes: most likely a quoted field is never closed (check the quotes from that row on)",
			r.lastRow+1, r.maxBytes))
	case err != nil:
		return nil, 0, r.fail(err)
	}
	start, _ := r.csv.FieldPos(0)
	end, _ := r.csv.FieldPos(len(rec) - 1)
	end += strings.Count(rec[len(rec)-1], "\n")
	number := r.advance(start, end)
	if fe := checkText(rec, number); fe != nil {
		return nil, number, r.fail(fe)
	}
	return rec, number, nil
}

// advance gives the record spanning lines start to end its row number: one after the previous
// record plus the empty lines encoding/csv skipped in between, which a spreadsheet shows as rows.
func (r *Reader) advance(start, end int) int {
	gap := start - r.lastLine - 1
	if gap < 0 {
		gap = 0
	}
	r.lastRow += 1 + gap
	r.lastLine = end
	return r.lastRow
}

// fail makes err the Reader's sticky error, turning the guard's findings into file errors.
func (r *Reader) fail(err error) error {
	if errors.Is(err, errBinary) {
		// The guard reads ahead of the rows, so the byte offset is exact and a row number is not.
		err = fileErrorf(CodeNotCSV, 0,
			"the file contains a NUL byte (after %d bytes): it is binary data or UTF-16 text, not CSV; save it as \"CSV UTF-8\"",
			r.src.n)
	} else if _, ok := AsFileError(err); !ok {
		err = fmt.Errorf("read upload: %w", err)
	}
	r.err = err
	return err
}

// checkText fails a file whose record is not UTF-8: PostgreSQL could not store it, and a file in
// another encoding (Windows-1252 from Excel) would have every accented name garbled, so the
// partner is told to re-save the file rather than have some of its rows dropped.
func checkText(rec []string, number int) *FileError {
	for _, f := range rec {
		if !utf8.ValidString(f) {
			return fileErrorf(CodeNotCSV, number,
				"row %d is not UTF-8 text: save the file as \"CSV UTF-8\" (Excel) or with UTF-8 encoding", number)
		}
	}
	return nil
}

// isBlank reports whether every field of rec is empty or white space: a blank spreadsheet row.
func isBlank(rec []string) bool {
	for _, f := range rec {
		if trimValue(f) != "" {
			return false
		}
	}
	return true
}

// capValues returns at most MaxColumns of rec's fields, each cut to MaxValueBytes. When it cuts,
// it copies, so that what is kept does not pin the whole (large) record in memory.
func capValues(rec []string) []string {
	n := min(len(rec), MaxColumns)
	cut := n < len(rec)
	for _, f := range rec[:n] {
		if len(f) > MaxValueBytes {
			cut = true
			break
		}
	}
	if !cut {
		return rec
	}
	out := make([]string, n)
	for i, f := range rec[:n] {
		out[i] = strings.Clone(truncate(f, MaxValueBytes))
	}
	return out
}

// truncate cuts s to at most max bytes at a character boundary, ending it with "…" when cut.
func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func describeParseError(pe *csv.ParseError) string {
	switch {
	case errors.Is(pe.Err, csv.ErrBareQuote):
		return fmt.Sprintf("a quote (\") inside an unquoted field at line %d, column %d: quote the whole field and double the quotes in it",
			pe.Line, pe.Column)
	case errors.Is(pe.Err, csv.ErrQuote):
		return fmt.Sprintf("a quoted field is not closed, or has a quote that is not doubled, at line %d, column %d",
			pe.Line, pe.Column)
	default:
		return fmt.Sprintf("%v at line %d, column %d", pe.Err, pe.Line, pe.Column)
	}
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// binarySignatures are the starts of files partners upload by mistake instead of CSV.
var binarySignatures = []struct {
	magic string
	what  string
}{
	{"PK\x03\x04", "a ZIP archive or an Excel workbook (.xlsx)"},
	{"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", "an Excel 97-2003 workbook (.xls)"},
	{"%PDF", "a PDF document"},
	{"\x1F\x8B", "a gzip archive"},
	{"\xFF\xFE", "UTF-16 text"},
	{"\xFE\xFF", "UTF-16 text"},
}

// sniffBinary recognises a file that is not text by its first bytes.
func sniffBinary(window []byte) *FileError {
	for _, s := range binarySignatures {
		if bytes.HasPrefix(window, []byte(s.magic)) {
			return fileErrorf(CodeNotCSV, 0, "the file is %s, not CSV: export or save it as \"CSV UTF-8\"", s.what)
		}
	}
	return nil
}

// detectDelimiter picks comma, semicolon or tab for the first non-blank line of window: the one
// that makes the most cells name a known column, then the one that occurs most often outside
// quotes, then in that order. Counting outside quotes lets a quoted header cell hold a delimiter.
func detectDelimiter(window []byte) rune {
	line := firstLine(window)
	best, bestKnown, bestCount := ',', -1, -1
	for _, d := range []byte{',', ';', '\t'} {
		cells := splitOutsideQuotes(line, d)
		known := 0
		for _, c := range cells {
			if _, ok := ColumnOf(c); ok {
				known++
			}
		}
		if count := len(cells) - 1; known > bestKnown || (known == bestKnown && count > bestCount) {
			best, bestKnown, bestCount = rune(d), known, count
		}
	}
	return best
}

// firstLine returns the first line of window, ended by a line break outside quotes, that has
// something besides white space, quotes and delimiters.
func firstLine(window []byte) []byte {
	start, inQuotes, blank := 0, false, true
	for i, b := range window {
		switch {
		case b == '"':
			inQuotes = !inQuotes
			blank = false
		case (b == '\n' || b == '\r') && !inQuotes:
			if !blank {
				return window[start:i]
			}
			start, blank = i+1, true
		case b != ' ' && b != '\t' && b != ',' && b != ';':
			blank = false
		}
	}
	return window[start:]
}

func splitOutsideQuotes(line []byte, d byte) []string {
	var cells []string
	start, inQuotes := 0, false
	for i, b := range line {
		switch {
		case b == '"':
			inQuotes = !inQuotes
		case b == d && !inQuotes:
			cells = append(cells, string(line[start:i]))
			start = i + 1
		}
	}
	return append(cells, string(line[start:]))
}

var (
	errBinary      = errors.New("NUL byte in input")
	errRowTooLarge = errors.New("row too large")
)

// guard sits between the upload and everything that buffers it: it refuses NUL bytes (binary
// data; PostgreSQL text cannot hold them either) and stops handing out bytes past limit, so an
// unclosed quote cannot make encoding/csv buffer the rest of a 200 MiB file as one field.
type guard struct {
	r     io.Reader
	n     int64 // bytes handed out
	limit int64 // n may not pass it; -1: no limit yet
	err   error // errBinary once a NUL was seen: the bytes after it were read and dropped
}

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.limit >= 0 {
		room := g.limit - g.n
		if room <= 0 {
			return 0, errRowTooLarge
		}
		if int64(len(p)) > room {
			p = p[:room]
		}
	}
	n, err := g.r.Read(p)
	if i := bytes.IndexByte(p[:n], 0); i >= 0 {
		g.n += int64(i)
		g.err = errBinary
		return i, errBinary
	}
	g.n += int64(n)
	return n, err
}

// crToLF turns every CR into LF, for files whose lines end with CR alone. It is used only when
// the file's start has no LF at all, so CR LF files are never doubled.
type crToLF struct{ r io.Reader }

func (c crToLF) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i := range p[:n] {
		if p[i] == '\r' {
			p[i] = '\n'
		}
	}
	return n, err
}
