// Package csvx is the one CSV writer for files that leave the service (rejection downloads,
// exports): encoding/csv with every cell made safe to open in a spreadsheet. A cell that starts
// with a character a spreadsheet reads as the start of a formula or a control (=, +, -, @, tab,
// carriage return, line feed, NUL, and their full-width forms) is prefixed with a single quote,
// as OWASP's CSV injection advice says; the quote shows the cell as text. See FACTS.md, CSV.
package csvx

import (
	"encoding/csv"
	"io"
	"unicode/utf8"
)

// Options choose the file's dialect. The zero value writes LF line ends and no byte-order mark.
type Options struct {
	// BOM writes a UTF-8 byte-order mark first, so that Excel on Windows reads the file as UTF-8
	// rather than in the system code page. Default false.
	BOM bool
	// CRLF ends lines with CR LF, as RFC 4180 says. Default false (LF).
	CRLF bool
}

// Writer writes CSV records with every cell passed through SafeCell. Like csv.Writer it
// buffers: call Flush at the end and check its error.
type Writer struct {
	w       *csv.Writer
	out     io.Writer
	bom     bool
	started bool
	cells   []string
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer, opts Options) *Writer {
	cw := csv.NewWriter(w)
	cw.UseCRLF = opts.CRLF
	return &Writer{w: cw, out: w, bom: opts.BOM}
}

// Write writes one record, each cell made safe with SafeCell. It returns the underlying writer's
// error, if a buffer flush failed.
func (w *Writer) Write(record []string) error {
	if err := w.start(); err != nil {
		return err
	}
	w.cells = w.cells[:0]
	for _, c := range record {
		w.cells = append(w.cells, SafeCell(c))
	}
	return w.w.Write(w.cells)
}

// Flush writes any buffered data to the underlying writer and returns the first error of any
// Write or of the flush.
func (w *Writer) Flush() error {
	if err := w.start(); err != nil {
		return err
	}
	w.w.Flush()
	return w.w.Error()
}

// start writes the byte-order mark, once, before the first record.
func (w *Writer) start() error {
	if w.started {
		return nil
	}
	w.started = true
	if w.bom {
		if _, err := w.out.Write([]byte{0xEF, 0xBB, 0xBF}); err != nil {
			return err
		}
	}
	return nil
}

// SafeCell returns cell, prefixed with a single quote when its first character would make a
// spreadsheet evaluate it ("=1+1", "+1", "-5", "@SUM(A1)") or is a tab, carriage return, line
// feed or NUL. Full-width "＝＋－＠" are included: some spreadsheets in East Asian locales read
// them as the ASCII ones. Everything else is returned unchanged.
func SafeCell(cell string) string {
	if cell == "" {
		return cell
	}
	switch cell[0] {
	case '=', '+', '-', '@', '\t', '\r', '\n', 0:
		return "'" + cell
	}
	if cell[0] < utf8.RuneSelf {
		return cell
	}
	switch r, _ := utf8.DecodeRuneInString(cell); r {
	case '＝', '＋', '－', '＠':
		return "'" + cell
	}
	return cell
}
