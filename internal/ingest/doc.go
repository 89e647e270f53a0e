// Package ingest reads the CSV files partners upload (DESIGN §6) and makes leads of their rows,
// ready for dedup, or rejections with a reason. Reader and Validate are pure Go with no
// database; Service (upload.go, process.go) streams a file through Reader into a staging table,
// and its job runs Validate on each staged row and dedups by hash_key in set-based SQL.
//
// # The file
//
// A file is UTF-8 text, with or without a byte-order mark, delimited by commas, semicolons or
// tabs: the delimiter is detected from the header line (NewReader). Lines may end in LF, CR LF or
// CR alone. Fields follow RFC 4180 as encoding/csv reads it with LazyQuotes off: quoted fields may
// hold delimiters, doubled quotes and line breaks. Blank rows (every field empty) are skipped
// and not counted, but keep their place in the row numbering, which is what a spreadsheet shows:
// the header is row 1, and a quoted field spanning lines is one row.
//
// The first non-blank row is the header. Its cells name columns case- and
// punctuation-insensitively ("E-Mail Address" is email), with the aliases of Column.Aliases; the
// columns in RequiredColumns must be present. Other columns are kept in the row's raw values and
// otherwise ignored. When two cells name one column, the first wins.
//
// # What fails the whole file
//
// A *FileError with an ErrorCode, never a panic: binary data, UTF-16, or any row that is not
// UTF-8 (CodeNotCSV: a file in another encoding is re-saved by the partner rather than accepted
// with its accented rows dropped); a file with no header row (its first row holds an e-mail
// address: CodeNotCSV); no rows, or a header only (CodeEmptyFile); a required column missing
// (CodeMissingColumns, naming every one); more than MaxColumns columns (CodeTooManyColumns); more
// than Options.MaxRows rows (CodeTooManyRows); a row over Options.MaxRowBytes, which in practice
// is a quote never closed (CodeRowTooLarge).
//
// # What rejects one row
//
// Validate's reasons, in the order it checks: MALFORMED_ROW (not valid CSV, or a different
// number of fields than the header), INVALID_VALUE for a value over MaxFieldChars characters,
// MISSING_FIELDS, INVALID_EMAIL, INVALID_VALUE for a seniority, company size, country or price
// it cannot read. Seniority and company size free text map to the enums where unambiguous
// (ParseSeniority, ParseCompanySize), and a row without a seniority takes the one its title says
// plainly; countries are ISO 3166-1 codes or English names (ParseCountry). Defaults (NewDefaults)
// fill in an upload's price and country where a row has none. Normalisation and the dedup key
// are lead.Normalize's.
//
// # Rejections download
//
// RejectionsCSVHeader and RejectionsCSVRecord lay out the rejections CSV (row_number, reason,
// field, detail, then the file's own columns); write them through internal/csvx, which
// neutralises formula cells. Header.RawMap and Header.RawValues convert a row's raw values to
// and from the JSON object LeadRejection.raw shows.
//
// # Memory
//
// A Reader holds one row and a 64 KiB buffer. What is kept of a row is bounded: MaxColumns values
// of at most MaxValueBytes each, so a 1 MB field or a 10,000-column row costs a few KB once read.
package ingest
