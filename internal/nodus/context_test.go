package nodus

import (
	"context"
	"testing"
)

func TestTenantScope(t *testing.T) {
	ctx := context.Background()
	if _, _, ok := TenantScope(ctx); ok {
		t.Error("a bare context has a scope")
	}
	if _, err := RequireTenant(ctx); err != ErrNoScope {
		t.Errorf("RequireTenant without scope: %v", err)
	}
	if _, _, ok := TenantScope(WithTenant(ctx, "")); ok {
		t.Error("an empty tenant id counts as a scope")
	}
	id, all, ok := TenantScope(WithTenant(ctx, "t1"))
	if id != "t1" || all || !ok {
		t.Errorf("WithTenant: %q %v %v", id, all, ok)
	}
	id, all, ok = TenantScope(WithAllTenants(WithTenant(ctx, "t1")))
	if id != "" || !all || !ok {
		t.Errorf("WithAllTenants: %q %v %v", id, all, ok)
	}
	if _, err := RequireTenant(WithAllTenants(ctx)); err != ErrNoScope {
		t.Errorf("RequireTenant on the platform scope: %v, want ErrNoScope", err)
	}
	if got, err := RequireTenant(WithTenant(ctx, "t2")); got != "t2" || err != nil {
		t.Errorf("RequireTenant = %q, %v", got, err)
	}
}
