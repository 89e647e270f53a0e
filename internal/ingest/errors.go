package ingest

import (
	"errors"
	"fmt"
)

// ErrorCode says why a whole file was refused. It becomes LeadUpload.errorCode, so the codes are
// part of the public API: never rename one.
type ErrorCode string

// File-level error codes.
const (
	// CodeNotCSV: the file is not CSV text in UTF-8 (binary data, a spreadsheet workbook, UTF-16,
	// bytes that are not UTF-8, a header row that cannot be parsed) or has no header row.
	CodeNotCSV ErrorCode = "NOT_CSV"
	// CodeEmptyFile: the file has no rows at all, or a header row and no data rows.
	CodeEmptyFile ErrorCode = "EMPTY_FILE"
	// CodeMissingColumns: the header row lacks a required column (RequiredColumns).
	CodeMissingColumns ErrorCode = "MISSING_COLUMNS"
	// CodeTooManyRows: the file has more data rows than Options.MaxRows (MAX_UPLOAD_ROWS).
	CodeTooManyRows ErrorCode = "TOO_MANY_ROWS"
	// CodeTooManyColumns: the header row has more than MaxColumns columns.
	CodeTooManyColumns ErrorCode = "TOO_MANY_COLUMNS"
	// CodeRowTooLarge: one row is larger than Options.MaxRowBytes, which in practice means a
	// quoted field that is never closed and swallows the rest of the file.
	CodeRowTooLarge ErrorCode = "ROW_TOO_LARGE"
)

// FileError is a refusal of the whole file: the upload fails with Code and Message, and no row
// of it is accepted. Reader and NewHeader return it; every other error they return is an I/O
// error of the underlying reader (a request cut short), not the partner's fault.
type FileError struct {
	// Code is the machine-readable reason.
	Code ErrorCode
	// Message says, for the partner, what is wrong and how to fix it.
	Message string
	// Row is the spreadsheet row number (header = 1) the problem was found at, or 0 when it is
	// not about one row (an empty file, a binary file found by its first bytes).
	Row int
	// Columns lists the canonical names of the missing columns for CodeMissingColumns.
	Columns []string
}

func (e *FileError) Error() string {
	if e.Row > 0 {
		return fmt.Sprintf("%s (row %d): %s", e.Code, e.Row, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// AsFileError returns the *FileError in err's chain, if there is one.
func AsFileError(err error) (*FileError, bool) {
	var fe *FileError
	ok := errors.As(err, &fe)
	return fe, ok
}

func fileErrorf(code ErrorCode, row int, format string, args ...any) *FileError {
	return &FileError{Code: code, Row: row, Message: fmt.Sprintf(format, args...)}
}

// Reason says why one row was not accepted. It becomes LeadRejection.reason (enum
// RejectionReason): never rename one.
type Reason string

// Rejection reasons. Validate assigns the first four; the DUPLICATE_* reasons are assigned by
// the set-based dedup over the staged rows, which is SQL and not part of this package.
const (
	ReasonInvalidEmail          Reason = "INVALID_EMAIL"
	ReasonMissingFields         Reason = "MISSING_FIELDS"
	ReasonInvalidValue          Reason = "INVALID_VALUE"
	ReasonMalformedRow          Reason = "MALFORMED_ROW"
	ReasonDuplicateInFile       Reason = "DUPLICATE_IN_FILE"
	ReasonDuplicateSamePartner  Reason = "DUPLICATE_SAME_PARTNER"
	ReasonDuplicateCrossPartner Reason = "DUPLICATE_CROSS_PARTNER"
)
