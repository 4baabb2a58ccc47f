package identity

import (
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nodus-os/nodus/internal/nodus"
)

// Tenant is an organization: the unit of isolation.
type Tenant struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Domain      string    `json:"domain"`
	LogoURL     string    `json:"logo_url"`
	IsActive    bool      `json:"is_active"`
	MaxUsers    int       `json:"max_users"`    // 0: no limit
	MaxChatbots int       `json:"max_chatbots"` // 0: no limit
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Validate checks a tenant's fields, all at once.
func (t *Tenant) Validate() error {
	f := map[string]string{}
	t.Name = strings.TrimSpace(t.Name)
	if t.Name == "" || utf8.RuneCountInString(t.Name) > 100 {
		f["name"] = "required, at most 100 characters"
	}
	if utf8.RuneCountInString(t.Description) > 2000 {
		f["description"] = "at most 2000 characters"
	}
	if len(t.Domain) > 253 || strings.ContainsAny(t.Domain, " /\\@") {
		f["domain"] = "must be a host name"
	}
	if t.LogoURL != "" && !(strings.HasPrefix(t.LogoURL, "https://") || strings.HasPrefix(t.LogoURL, "/")) || len(t.LogoURL) > 2000 {
		f["logo_url"] = "must be an https:// URL or a path on this server"
	}
	if t.MaxUsers < 0 {
		f["max_users"] = "must be 0 (no limit) or more"
	}
	if t.MaxChatbots < 0 {
		f["max_chatbots"] = "must be 0 (no limit) or more"
	}
	return fieldErrors(f)
}

// User is a person who signs in.
type User struct {
	ID           string     `json:"id"`
	TenantID     string     `json:"tenant_id,omitempty"` // "" for super_admin
	Email        string     `json:"email"`
	Username     string     `json:"username"`
	FullName     string     `json:"full_name"`
	Role         Role       `json:"role"`
	IsActive     bool       `json:"is_active"`
	LastLoginAt  *time.Time `json:"last_login_at,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	PasswordHash string     `json:"-"`
}

// Validate checks a user's fields, all at once. Emails and usernames are
// compared case-insensitively, so they are stored lower-cased.
func (u *User) Validate() error {
	f := map[string]string{}
	u.Email = strings.ToLower(strings.TrimSpace(u.Email))
	if a, err := mail.ParseAddress(u.Email); err != nil || a.Address != u.Email || len(u.Email) > 254 {
		f["email"] = "must be an email address"
	}
	u.Username = strings.ToLower(strings.TrimSpace(u.Username))
	if !validUsername(u.Username) {
		f["username"] = "3 to 64 characters: letters, digits, '.', '_' or '-'"
	}
	if utf8.RuneCountInString(u.FullName) > 200 {
		f["full_name"] = "at most 200 characters"
	}
	switch {
	case !u.Role.Valid():
		f["role"] = "must be super_admin, org_admin, user or viewer"
	case u.Role == RoleSuperAdmin && u.TenantID != "":
		f["tenant_id"] = "a super_admin belongs to no tenant"
	case u.Role != RoleSuperAdmin && u.TenantID == "":
		f["tenant_id"] = "required for this role"
	}
	return fieldErrors(f)
}

func validUsername(s string) bool {
	if len(s) < 3 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func fieldErrors(f map[string]string) error {
	if len(f) == 0 {
		return nil
	}
	return &nodus.Error{Code: nodus.EINVALID, Message: "invalid fields", Fields: f}
}
