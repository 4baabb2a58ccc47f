package store

import "testing"

func TestRebind(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2"},
		{"SELECT '?' , ? FROM t", "SELECT '?' , $1 FROM t"},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{`SELECT "odd?col" FROM t WHERE x = ?`, `SELECT "odd?col" FROM t WHERE x = $1`},
		{"SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"SELECT /* a ? b */ ?", "SELECT /* a ? b */ $1"},
		{"SELECT 'unterminated ?", "SELECT 'unterminated ?"},
	}
	for _, tt := range tests {
		if got := Postgres.Rebind(tt.in); got != tt.want {
			t.Errorf("Rebind(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := SQLite.Rebind(tt.in); got != tt.in {
			t.Errorf("SQLite.Rebind changed %q to %q", tt.in, got)
		}
	}
}

func TestParseDialect(t *testing.T) {
	tests := []struct {
		url  string
		want Dialect
		path string
	}{
		{"postgres://u:p@h/db", Postgres, ""},
		{"postgresql://h/db?sslmode=disable", Postgres, ""},
		{"sqlite:data/main.db", SQLite, "data/main.db"},
		{"sqlite:///var/lib/nodus/main.db", SQLite, "/var/lib/nodus/main.db"},
		{"file:/tmp/x.db?mode=rwc", SQLite, "/tmp/x.db"},
	}
	for _, tt := range tests {
		got, err := ParseDialect(tt.url)
		if err != nil || got != tt.want {
			t.Errorf("ParseDialect(%q) = %v, %v; want %v", tt.url, got, err, tt.want)
		}
		if tt.path != "" && SQLitePath(tt.url) != tt.path {
			t.Errorf("SQLitePath(%q) = %q, want %q", tt.url, SQLitePath(tt.url), tt.path)
		}
	}
	for _, bad := range []string{"", "mysql://h/db", "/tmp/x.db"} {
		if _, err := ParseDialect(bad); err == nil {
			t.Errorf("ParseDialect(%q) succeeded", bad)
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://nodus:s3cret@db:5432/nodus?sslmode=disable", "postgres://nodus:xxxxx@db:5432/nodus?sslmode=disable"},
		{"postgres://db/nodus?password=s3cret&user=nodus", "postgres://db/nodus?password=xxxxx&user=nodus"},
		{"sqlite:data/main.db", "sqlite:data/main.db"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPlaceholders(t *testing.T) {
	for n, want := range map[int]string{-1: "", 0: "", 1: "?", 3: "?, ?, ?"} {
		if got := placeholders(n); got != want {
			t.Errorf("placeholders(%d) = %q, want %q", n, got, want)
		}
	}
}
