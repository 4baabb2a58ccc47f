// Package settings owns the platform's settings and each tenant's
// overrides of them: branding (product name, logo, colour) and the
// outgoing email server.
//
// Invariants:
//
//   - A field's effective value is the tenant's override, else the
//     platform's value, else the built-in default, and every read says
//     which of the three it is.
//   - Every value is validated before it is stored; an update is applied
//     whole or not at all, and every invalid field is reported at once.
//   - The SMTP password is write-only. It is sealed (internal/keyring) with
//     additional data naming its owner and field before it reaches the
//     store, so the database holds no plaintext and a sealed password
//     copied into another tenant's row does not open. Reads only say
//     whether one is set; audit rows say "(set)" or "(cleared)". Only
//     EmailConfig, for in-process senders, returns it.
//   - A tenant inherits the platform's SMTP password only while it also
//     inherits every field that says where and how the password is sent
//     (host, port, user, security). A tenant that points email at its own
//     server must give its own password: the platform's credential is
//     never sent to a host a tenant chose.
//   - Changing where an owner's own password is sent (host, port, user or
//     security, including by removing an override) needs the password
//     again, or its removal, in the same update: the stored password is
//     never redirected by someone who does not know it.
//   - A password that does not open (another master key) stays sealed:
//     EmailConfig fails with EUNAVAILABLE and returns no password.
//   - A test email (SendTestEmail) is sent with the same effective
//     settings, through the Mailer given to UseMailer (egress-dialled in
//     Nodus), at most 5 a minute per owner in this process, and every
//     attempt past the scope and the address checks is audited as
//     settings.email_test with its result, never the password.
//   - Tenancy is the store's: a tenant's settings are read and written
//     under the context's scope, so another tenant's id is not found.
//     Platform values need the all-tenants scope to write.
package settings
