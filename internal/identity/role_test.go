package identity

import (
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/nodus"
)

func TestPermissions(t *testing.T) {
	p := NewPermissions()
	tests := []struct {
		role   Role
		action Action
		want   bool
	}{
		{RoleViewer, ActionReadContent, true},
		{RoleViewer, ActionWriteContent, false},
		{RoleViewer, ActionManageUsers, false},
		{RoleUser, ActionWriteContent, true},
		{RoleUser, ActionManageUsers, false},
		{RoleUser, ActionReadAudit, false},
		{RoleOrgAdmin, ActionManageUsers, true},
		{RoleOrgAdmin, ActionManageTenants, false},
		{RoleSuperAdmin, ActionManageTenants, true},
		{RoleViewer, ActionReadAgent, true},
		{RoleViewer, ActionUseAgent, false},
		{RoleUser, ActionUseAgent, true},
		{RoleViewer, ActionReadTracing, true},
		{RoleViewer, ActionWriteTracing, false},
		{RoleUser, ActionWriteTracing, true},
		{RoleUser, ActionManageTracing, false},
		{RoleOrgAdmin, ActionManageTracing, true},
		{RoleSuperAdmin, Action("no.such.action"), false},
		{Role("root"), ActionReadSelf, false},
	}
	for _, tt := range tests {
		if got := p.Allows(tt.role, tt.action); got != tt.want {
			t.Errorf("Allows(%s, %s) = %v, want %v", tt.role, tt.action, got, tt.want)
		}
	}
	// Viewers are read-only: no action they hold writes.
	for _, a := range p.Actions() {
		if p.Allows(RoleViewer, a) && a != ActionUpdateSelf && !strings.HasSuffix(string(a), ".read") {
			t.Errorf("viewer may %s", a)
		}
	}
	// Power is monotonic: whatever a role may do, every stronger role may.
	for _, a := range p.Actions() {
		for _, weak := range Roles() {
			for _, strong := range Roles() {
				if strong.AtLeast(weak) && p.Allows(weak, a) && !p.Allows(strong, a) {
					t.Errorf("%s may %s but %s may not", weak, a, strong)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	users := []struct {
		name   string
		u      User
		fields []string
	}{
		{"ok", User{Email: " Ann@Example.test ", Username: "Ann_1", Role: RoleUser, TenantID: "t"}, nil},
		{"bad email", User{Email: "not an email", Username: "ann", Role: RoleUser, TenantID: "t"}, []string{"email"}},
		{"display-name email", User{Email: "Ann <ann@example.test>", Username: "ann", Role: RoleUser, TenantID: "t"}, []string{"email"}},
		{"short username", User{Email: "a@example.test", Username: "an", Role: RoleUser, TenantID: "t"}, []string{"username"}},
		{"odd username", User{Email: "a@example.test", Username: "a/../b", Role: RoleUser, TenantID: "t"}, []string{"username"}},
		{"bad role", User{Email: "a@example.test", Username: "ann", Role: "root", TenantID: "t"}, []string{"role"}},
		{"super_admin in tenant", User{Email: "a@example.test", Username: "ann", Role: RoleSuperAdmin, TenantID: "t"}, []string{"tenant_id"}},
		{"user without tenant", User{Email: "a@example.test", Username: "ann", Role: RoleViewer}, []string{"tenant_id"}},
	}
	for _, tt := range users {
		err := tt.u.Validate()
		if len(tt.fields) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		for _, f := range tt.fields {
			if nodus.ErrorCode(err) != nodus.EINVALID || nodus.ErrorFields(err)[f] == "" {
				t.Errorf("%s: %v, want invalid field %s", tt.name, err, f)
			}
		}
	}
	u := User{Email: " Ann@Example.test ", Username: "Ann_1", Role: RoleUser, TenantID: "t"}
	_ = u.Validate()
	if u.Email != "ann@example.test" || u.Username != "ann_1" {
		t.Errorf("Validate did not normalise: %q %q", u.Email, u.Username)
	}

	tenants := []struct {
		name string
		t    Tenant
		ok   bool
	}{
		{"ok", Tenant{Name: "Acme", Domain: "acme.example", LogoURL: "https://acme.example/logo.png"}, true},
		{"blank name", Tenant{Name: "  "}, false},
		{"javascript logo", Tenant{Name: "Acme", LogoURL: "javascript:alert(1)"}, false},
		{"negative quota", Tenant{Name: "Acme", MaxUsers: -1}, false},
		{"domain with path", Tenant{Name: "Acme", Domain: "acme.example/x"}, false},
	}
	for _, tt := range tenants {
		if err := tt.t.Validate(); (err == nil) != tt.ok {
			t.Errorf("tenant %s: %v", tt.name, err)
		}
	}
}
