package nodus

import "github.com/google/uuid"

// NewID returns a new UUIDv7 as a string. Version 7 ids sort by creation
// time, which keeps B-tree inserts local and makes id order a usable
// creation order for cursors.
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// ValidID reports whether s is a UUID in canonical form. Handlers check ids
// from paths and bodies with it so malformed ids are a 404 or 400, not a
// database error.
func ValidID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}
