// Package identity owns who is who in Nodus: tenants (the seeds'
// organizations), users with one of four roles, sessions, personal API
// tokens, the permission table that maps roles to actions, the rules of
// who may manage whom (manage.go), and the navigation menu (menu.go).
//
// Invariants:
//   - A super_admin belongs to no tenant and acts on the platform; every
//     other user belongs to exactly one tenant.
//   - Tenant-owned data is read and written only under a nodus scope
//     (nodus.WithTenant or, on super_admin paths, nodus.WithAllTenants);
//     stores fail closed without one, and another tenant's object is
//     reported as not found.
//   - Secrets (passwords, session ids, API tokens) are stored only as
//     hashes: argon2id for passwords, SHA-256 of at least 128 random bits
//     for session ids and tokens.
//   - No one grants a role above their own, to a user or to a token, and no
//     one changes their own role or tenant; a token's role is capped by its
//     owner's current role.
package identity
