package identity

import "slices"

// Role is what a user may do. The four roles come from the VersaAI seed.
type Role string

const (
	RoleSuperAdmin Role = "super_admin" // the platform: every tenant
	RoleOrgAdmin   Role = "org_admin"   // one tenant, everything in it
	RoleUser       Role = "user"        // one tenant, own work
	RoleViewer     Role = "viewer"      // one tenant, read only
)

// Roles lists every role, most powerful first.
func Roles() []Role { return []Role{RoleSuperAdmin, RoleOrgAdmin, RoleUser, RoleViewer} }

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// rank orders roles by power, for "no one grants more than they hold".
func (r Role) rank() int {
	switch r {
	case RoleSuperAdmin:
		return 4
	case RoleOrgAdmin:
		return 3
	case RoleUser:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// AtLeast reports whether r is as powerful as other.
func (r Role) AtLeast(other Role) bool { return r.rank() >= other.rank() }

// Action is something a route or a service method does; every route
// declares the one it needs.
type Action string

const (
	ActionReadSelf      Action = "self.read"      // own profile, menus
	ActionUpdateSelf    Action = "self.update"    // own password, own tokens
	ActionReadTenant    Action = "tenant.read"    // the caller's tenant
	ActionManageTenants Action = "tenants.manage" // create, update, delete any tenant
	ActionReadUsers     Action = "users.read"
	ActionManageUsers   Action = "users.manage"
	ActionReadMenus     Action = "menus.read"
	ActionManageMenus   Action = "menus.manage"
	ActionReadSettings  Action = "settings.read"
	ActionManageSetting Action = "settings.manage"
	ActionReadAudit     Action = "audit.read"
	ActionReadEgress    Action = "egress.read"    // the tenant's egress policy, dry-run checks
	ActionManageEgress  Action = "egress.manage"  // change it; the platform's rules only as super_admin
	ActionReadVault     Action = "vault.read"     // environment, secret and version names, never values
	ActionWriteVault    Action = "vault.write"    // write, delete, undelete secrets where granted
	ActionRevealVault   Action = "vault.reveal"   // read values where granted: an explicit, audited act
	ActionManageVault   Action = "vault.manage"   // environments, grants, handles, destroy, keys
	ActionUseGateway    Action = "gateway.use"    // own virtual keys and spend
	ActionManageGateway Action = "gateway.manage" // deployments, budgets, every key and the tenant's spend
	ActionReadContent   Action = "content.read"   // knowledge bases, chatbots, conversations
	ActionWriteContent  Action = "content.write"  // create and change them
)

// The knowledge bases' actions: every member reads the tenant's knowledge
// bases and documents, admins change them.
const (
	ActionReadKnowledge   Action = "knowledge.read"
	ActionManageKnowledge Action = "knowledge.manage"
)

// The agent sessions' actions: members use (and viewers read) their own
// sessions; admins may name any user of their tenant (the HTTP API's
// rule, internal/httpapi/agent.go).
const (
	ActionReadAgent Action = "agent.read"
	ActionUseAgent  Action = "agent.use"
)

// LLM tracing's actions: every member reads the tenant's traces, members
// who write (not viewers) score them, admins manage the Langfuse key
// pairs the SDKs send traces with.
const (
	ActionReadTracing   Action = "tracing.read"
	ActionWriteTracing  Action = "tracing.write"
	ActionManageTracing Action = "tracing.manage"
)

// Usage metrics' action: per user and chatbot, so for admins.
const ActionReadUsage Action = "usage.read"

// permissions is the permission table: which role may do which action.
// A role not listed for an action may not do it.
func permissions() map[Action][]Role {
	all := []Role{RoleSuperAdmin, RoleOrgAdmin, RoleUser, RoleViewer}
	admins := []Role{RoleSuperAdmin, RoleOrgAdmin}
	return map[Action][]Role{
		ActionReadSelf:      all,
		ActionUpdateSelf:    all,
		ActionReadTenant:    all,
		ActionManageTenants: {RoleSuperAdmin},
		ActionReadUsers:     admins,
		ActionManageUsers:   admins,
		ActionReadMenus:     all,
		ActionManageMenus:   admins,
		ActionReadSettings:  all,
		ActionManageSetting: admins,
		ActionReadAudit:     admins,
		ActionReadEgress:    admins,
		ActionManageEgress:  admins,
		ActionReadVault:     all,
		ActionWriteVault:    {RoleSuperAdmin, RoleOrgAdmin, RoleUser},
		ActionRevealVault:   {RoleSuperAdmin, RoleOrgAdmin, RoleUser},
		ActionManageVault:   admins,
		ActionUseGateway:    {RoleSuperAdmin, RoleOrgAdmin, RoleUser},
		ActionManageGateway: admins,
		ActionReadContent:   all,
		ActionWriteContent:  {RoleSuperAdmin, RoleOrgAdmin, RoleUser},

		ActionReadKnowledge:   all,
		ActionManageKnowledge: admins,

		ActionReadAgent: all,
		ActionUseAgent:  {RoleSuperAdmin, RoleOrgAdmin, RoleUser},

		ActionReadTracing:   all,
		ActionWriteTracing:  {RoleSuperAdmin, RoleOrgAdmin, RoleUser},
		ActionManageTracing: admins,

		ActionReadUsage: admins,
	}
}

// Permissions is the permission table, computed once by NewPermissions.
type Permissions struct{ table map[Action][]Role }

// NewPermissions returns the permission table.
func NewPermissions() Permissions { return Permissions{table: permissions()} }

// Allows reports whether role may do action. Unknown actions are denied.
func (p Permissions) Allows(role Role, action Action) bool {
	return slices.Contains(p.table[action], role)
}

// Actions lists every action in the table.
func (p Permissions) Actions() []Action {
	out := make([]Action, 0, len(p.table))
	for a := range p.table {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}
