package nodus

import "context"

// Scope is whose data a request may touch: one tenant, or, on the explicit
// path super_admins take, every tenant. Stores read it from the context and
// fail closed without one, so a query can never run unscoped by accident.
type Scope struct {
	tenantID   string
	allTenants bool
}

type scopeKey struct{}

// WithTenant returns ctx scoped to one tenant.
func WithTenant(ctx context.Context, tenantID string) context.Context {
	return context.WithValue(ctx, scopeKey{}, Scope{tenantID: tenantID})
}

// WithAllTenants returns ctx scoped to every tenant. Only platform-level
// code paths (super_admin routes, operator commands, background jobs that
// sweep all tenants) may use it.
func WithAllTenants(ctx context.Context) context.Context {
	return context.WithValue(ctx, scopeKey{}, Scope{allTenants: true})
}

// TenantScope returns the tenant ctx is scoped to. all reports a
// cross-tenant scope; ok is false when ctx carries no scope at all.
func TenantScope(ctx context.Context) (tenantID string, all, ok bool) {
	s, ok := ctx.Value(scopeKey{}).(Scope)
	if !ok || (s.tenantID == "" && !s.allTenants) {
		return "", false, false
	}
	return s.tenantID, s.allTenants, true
}

// ErrNoScope is returned by stores asked for tenant-owned data without a
// scope in the context: a programming error, reported as internal.
var ErrNoScope = Errorf(EINTERNAL, "no tenant scope")

// RequireTenant returns the single tenant ctx is scoped to, or ErrNoScope.
// Stores use it for tenant-owned writes, which always belong to one tenant.
func RequireTenant(ctx context.Context) (string, error) {
	id, _, ok := TenantScope(ctx)
	if !ok || id == "" {
		return "", ErrNoScope
	}
	return id, nil
}
