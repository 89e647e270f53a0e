package db

import (
	"encoding/base64"
	"encoding/json"
)

// EncodeCursor turns a keyset position (a small struct) into the opaque string clients pass back
// as `after`: base64url of its JSON.
func EncodeCursor(position any) string {
	b, _ := json.Marshal(position)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor parses a string made by EncodeCursor into position; it reports false for anything
// else.
func DecodeCursor(s string, position any) bool {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && json.Unmarshal(b, position) == nil
}

// Paginate finishes a keyset page fetched with LIMIT first+1: it drops the extra row (whose
// presence means another page follows) and encodes each remaining row's position as its cursor.
func Paginate[T any](rows []T, first int, position func(T) any) (page []T, cursors []string, hasNext bool) {
	if hasNext = len(rows) > first; hasNext {
		rows = rows[:first]
	}
	cursors = make([]string, len(rows))
	for i, r := range rows {
		cursors[i] = EncodeCursor(position(r))
	}
	return rows, cursors, hasNext
}
