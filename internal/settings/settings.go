package settings

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"time"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
)

// Source says where an effective value comes from.
type Source string

const (
	SourceDefault  Source = "default"  // the built-in default
	SourcePlatform Source = "platform" // the platform's value
	SourceTenant   Source = "tenant"   // the tenant's override
)

// Value is one effective field and where it comes from.
type Value[T any] struct {
	Value  T      `json:"value"`
	Source Source `json:"source"`
}

// Branding is what the UI shows: every role may read it.
type Branding struct {
	ProductName  Value[string] `json:"product_name"`
	LogoURL      Value[string] `json:"logo_url"`
	PrimaryColor Value[string] `json:"primary_color"`
}

// Email is the outgoing mail server. The password is never part of it;
// PasswordSet says whether one applies and whose it is.
type Email struct {
	SMTPHost    Value[string] `json:"smtp_host"`
	SMTPPort    Value[int]    `json:"smtp_port"`
	SMTPUser    Value[string] `json:"smtp_user"`
	From        Value[string] `json:"from"`
	Security    Value[string] `json:"security"`
	PasswordSet Value[bool]   `json:"smtp_password_set"`
}

// Settings are the effective settings of a tenant, or of the platform
// itself when TenantID is "".
type Settings struct {
	TenantID string   `json:"tenant_id,omitempty"`
	Branding Branding `json:"branding"`
	// Email is nil for callers that may not manage settings.
	Email      *Email     `json:"email,omitempty"`
	Recordings Recordings `json:"recordings"`
}

// Recordings names the gateway models that transcribe and summarise
// recordings; "" for none (recordings wait for a speech model).
type Recordings struct {
	SpeechModel  Value[string] `json:"speech_model"`
	SummaryModel Value[string] `json:"summary_model"`
}

// EmailConfig is what a mail sender needs, password included. It exists
// only in process memory: it prints, logs and encodes without the password.
type EmailConfig struct {
	Host     string
	Port     int
	User     string
	Password string `json:"-"`
	From     string
	Security string
}

func (c EmailConfig) String() string {
	return fmt.Sprintf("{Host:%s Port:%d User:%s Password:%s From:%s Security:%s}",
		c.Host, c.Port, c.User, redacted(c.Password), c.From, c.Security)
}

// GoString keeps the password out of %#v.
func (c EmailConfig) GoString() string { return "settings.EmailConfig" + c.String() }

// LogValue keeps the password out of logs.
func (c EmailConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", c.Host), slog.Int("port", c.Port), slog.String("user", c.User),
		slog.Bool("password_set", c.Password != ""), slog.String("from", c.From), slog.String("security", c.Security))
}

func redacted(s string) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Setting is one stored field: a platform value (TenantID "") or a
// tenant's override. Value is the field's JSON; for the secret, a JSON
// string holding its sealed bytes in base64.
type Setting struct {
	ID        string
	TenantID  string
	Key       string
	Value     string
	UpdatedAt time.Time
	UpdatedBy string // user id; "" for the system
}

// Store keeps settings rows, scoped by nodus.TenantScope(ctx).
type Store interface {
	// ListSettings returns the platform's rows and, when tenantID is not
	// "", that tenant's. A tenant the scope cannot see is ENOTFOUND.
	ListSettings(ctx context.Context, tenantID string) ([]Setting, error)
	// UpdateSettings writes put and deletes the keys in remove, all for one
	// owner (tenantID, or the platform for ""), in one transaction, and
	// returns that owner's rows for those keys as they were before.
	UpdateSettings(ctx context.Context, tenantID string, put []Setting, remove []string) ([]Setting, error)
	// ListSettingsByKey returns every owner's row of key (all-tenants
	// scope).
	ListSettingsByKey(ctx context.Context, key string) ([]Setting, error)
	// ReplaceSettingValue writes value into row id if it still holds old
	// (all-tenants scope).
	ReplaceSettingValue(ctx context.Context, id, old, value string) (bool, error)
}

// Sealer encrypts secrets at rest; *keyring.Sealer is one.
type Sealer interface {
	Seal(plaintext, ad []byte) ([]byte, error)
	Open(sealed, ad []byte) ([]byte, error)
}

// Auditor records security-relevant actions.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Service reads and changes settings.
type Service struct {
	store Store
	box   Sealer
	audit Auditor
	clock nodus.Clock
	// updated are told of every successful update (OnUpdate).
	updated []func(ctx context.Context, tenantID string)
	// mailer and tests are set by UseMailer; without them no test email
	// is sent.
	mailer Mailer
	tests  *windowLimiter
}

// NewService returns the settings service. A nil clock is the system clock.
func NewService(store Store, box Sealer, auditor Auditor, clock nodus.Clock) *Service {
	if clock == nil {
		clock = nodus.SystemClock{}
	}
	return &Service{store: store, box: box, audit: auditor, clock: clock}
}

// Effective returns the effective settings of tenantID, or the platform's
// own for "", with the email group only when withEmail is set (callers
// allowed to manage settings).
func (s *Service) Effective(ctx context.Context, tenantID string, withEmail bool) (*Settings, error) {
	r, err := s.resolve(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	out := &Settings{
		TenantID: tenantID,
		Branding: Branding{
			ProductName:  r.str(KeyProductName),
			LogoURL:      r.str(KeyLogoURL),
			PrimaryColor: r.str(KeyPrimaryColor),
		},
		Recordings: Recordings{SpeechModel: r.str(KeySpeechModel), SummaryModel: r.str(KeySummaryModel)},
	}
	if withEmail {
		out.Email = &Email{
			SMTPHost:    r.str(KeySMTPHost),
			SMTPPort:    Value[int]{Value: r.values[KeySMTPPort].(int), Source: r.sources[KeySMTPPort]},
			SMTPUser:    r.str(KeySMTPUser),
			From:        r.str(KeyFrom),
			Security:    r.str(KeySecurity),
			PasswordSet: Value[bool]{Value: r.password != nil, Source: r.sources[KeySMTPPassword]},
		}
	}
	return out, nil
}

// EmailConfig returns the effective email settings of tenantID (the
// platform's for ""), with the password decrypted, for a sender in this
// process. It is never served over the API.
func (s *Service) EmailConfig(ctx context.Context, tenantID string) (EmailConfig, error) {
	r, err := s.resolve(ctx, tenantID)
	if err != nil {
		return EmailConfig{}, err
	}
	c := EmailConfig{
		Host:     r.values[KeySMTPHost].(string),
		Port:     r.values[KeySMTPPort].(int),
		User:     r.values[KeySMTPUser].(string),
		From:     r.values[KeyFrom].(string),
		Security: r.values[KeySecurity].(string),
	}
	if r.password != nil {
		pw, err := s.open(*r.password)
		if err != nil {
			return EmailConfig{}, err
		}
		c.Password = pw
	}
	return c, nil
}

// RecordingModels returns the effective speech and summary models of
// tenantID ("" for none).
func (s *Service) RecordingModels(ctx context.Context, tenantID string) (speech, summary string, err error) {
	r, err := s.resolve(ctx, tenantID)
	if err != nil {
		return "", "", err
	}
	return r.values[KeySpeechModel].(string), r.values[KeySummaryModel].(string), nil
}

// resolved holds each field's effective value and source, and the row of
// the password that applies (nil for none).
type resolved struct {
	values   map[string]any
	sources  map[string]Source
	password *Setting
}

func (r resolved) str(key string) Value[string] {
	return Value[string]{Value: r.values[key].(string), Source: r.sources[key]}
}

func (s *Service) resolve(ctx context.Context, tenantID string) (resolved, error) {
	rows, err := s.store.ListSettings(ctx, tenantID)
	if err != nil {
		return resolved{}, fmt.Errorf("settings: read: %w", err)
	}
	return resolveRows(rows, tenantID)
}

// resolveRows resolves the platform's and tenantID's rows.
func resolveRows(rows []Setting, tenantID string) (resolved, error) {
	var err error
	platform, tenant := map[string]Setting{}, map[string]Setting{}
	for _, row := range rows {
		switch {
		case row.TenantID == "":
			platform[row.Key] = row
		case row.TenantID == tenantID:
			tenant[row.Key] = row
		}
	}
	r := resolved{values: map[string]any{}, sources: map[string]Source{}}
	for _, f := range fields {
		if f.secret {
			continue
		}
		v, src := f.def, SourceDefault
		row, ok := tenant[f.key]
		if ok {
			src = SourceTenant
		} else if row, ok = platform[f.key]; ok {
			src = SourcePlatform
		}
		if ok {
			if v, err = decodeStored(f, row.Value); err != nil {
				return resolved{}, nodus.WrapError(err, nodus.EINTERNAL, "stored settings are unreadable")
			}
		}
		r.values[f.key], r.sources[f.key] = v, src
	}
	r.sources[KeySMTPPassword] = SourceDefault
	if row, ok := tenant[KeySMTPPassword]; ok {
		r.password, r.sources[KeySMTPPassword] = &row, SourceTenant
	} else if row, ok := platform[KeySMTPPassword]; ok && !overridesConnection(tenant) {
		r.password, r.sources[KeySMTPPassword] = &row, SourcePlatform
	}
	return r, nil
}

// overridesConnection reports whether a tenant changed where or how the
// password would be sent, which ends its inheritance of the platform's.
func overridesConnection(tenant map[string]Setting) bool {
	for _, k := range connectionKeys {
		if _, ok := tenant[k]; ok {
			return true
		}
	}
	return false
}

// Update applies a partial update to the settings of tenantID, or to the
// platform's own values for "". patch is the API's body: groups
// ("branding", "email") of fields; a field's JSON null removes the
// override so the inherited value applies again. Unknown and invalid
// fields are all reported in one EINVALID error, and then nothing is
// written. actor says who acts (ActorID, ActorKind, Address, UserAgent);
// the update is audited as setting.update. It returns the new effective
// settings, email included.
func (s *Service) Update(ctx context.Context, tenantID string, patch map[string]json.RawMessage, actor audit.Entry) (*Settings, error) {
	set, remove, err := parsePatch(patch)
	if err != nil {
		return nil, err
	}
	if err := s.checkRedirect(ctx, tenantID, set, remove); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	var put []Setting
	for _, f := range fields { // in table order, so writes are deterministic
		v, ok := set[f.key]
		if !ok {
			continue
		}
		var value []byte
		if f.secret {
			sealed, err := s.box.Seal([]byte(v.(string)), additionalData(tenantID, f.key))
			if err != nil {
				return nil, fmt.Errorf("settings: seal %s: %w", f.key, err)
			}
			value, err = json.Marshal(base64.StdEncoding.EncodeToString(sealed))
			if err != nil {
				return nil, err
			}
		} else if value, err = json.Marshal(v); err != nil {
			return nil, err
		}
		put = append(put, Setting{ID: nodus.NewID(), TenantID: tenantID, Key: f.key, Value: string(value),
			UpdatedAt: now, UpdatedBy: actor.ActorID})
	}
	before, err := s.store.UpdateSettings(ctx, tenantID, put, remove)
	if err != nil {
		return nil, fmt.Errorf("settings: update: %w", err)
	}
	changes, err := diff(before, set, remove)
	if err != nil {
		return nil, err
	}
	target := tenantID
	if target == "" {
		target = "platform"
	}
	if err := s.audit.Record(ctx, actor.About(tenantID, "setting.update", "settings", target, changes)); err != nil {
		return nil, err
	}
	for _, fn := range s.updated {
		fn(ctx, tenantID)
	}
	return s.Effective(ctx, tenantID, true)
}

// OnUpdate registers fn to hear of each successful update of a tenant's
// settings ("" for the platform's): recordings waiting for a speech model
// resume at once. It is for wiring at start, before requests arrive.
func (s *Service) OnUpdate(fn func(ctx context.Context, tenantID string)) {
	s.updated = append(s.updated, fn)
}

// checkRedirect refuses an update that would send an owner's stored SMTP
// password to another server (a changed host, port, user or security)
// unless the update also gives the password again or removes it: whoever
// changes where the password goes must know it.
func (s *Service) checkRedirect(ctx context.Context, tenantID string, set map[string]any, remove []string) error {
	if _, ok := set[KeySMTPPassword]; ok || slices.Contains(remove, KeySMTPPassword) {
		return nil
	}
	touched := false
	for _, k := range connectionKeys {
		_, ok := set[k]
		touched = touched || ok || slices.Contains(remove, k)
	}
	if !touched {
		return nil
	}
	rows, err := s.store.ListSettings(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("settings: read: %w", err)
	}
	// after is rows with the patch applied to the owner's own rows.
	hasPassword := false
	var after []Setting
	for _, row := range rows {
		own := row.TenantID == tenantID
		hasPassword = hasPassword || own && row.Key == KeySMTPPassword
		if _, replaced := set[row.Key]; own && (replaced || slices.Contains(remove, row.Key)) {
			continue
		}
		after = append(after, row)
	}
	if !hasPassword {
		return nil
	}
	for k, v := range set {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		after = append(after, Setting{TenantID: tenantID, Key: k, Value: string(b)})
	}
	was, err := resolveRows(rows, tenantID)
	if err != nil {
		return err
	}
	will, err := resolveRows(after, tenantID)
	if err != nil {
		return err
	}
	for _, k := range connectionKeys {
		if was.values[k] != will.values[k] {
			return &nodus.Error{Code: nodus.EINVALID, Message: "invalid settings", Fields: map[string]string{
				KeySMTPPassword: "must be sent again (or null to remove it) when smtp_host, smtp_port, smtp_user or security change",
			}}
		}
	}
	return nil
}

// Audit markers for the password, which is never shown.
const (
	markSet     = "(set)"
	markCleared = "(cleared)"
)

// diff returns the audit changes of an update: each field whose stored
// value changed, before and after. The password appears only as markers.
func diff(before []Setting, set map[string]any, remove []string) (map[string]audit.Change, error) {
	old := map[string]any{}
	for _, row := range before {
		f, ok := fieldByKey[row.Key]
		if !ok {
			continue
		}
		if f.secret {
			old[row.Key] = markSet
			continue
		}
		v, err := decodeStored(f, row.Value)
		if err != nil {
			return nil, nodus.WrapError(err, nodus.EINTERNAL, "stored settings are unreadable")
		}
		old[row.Key] = v
	}
	changes := map[string]audit.Change{}
	for key, v := range set {
		prev, had := old[key]
		switch {
		case fieldByKey[key].secret:
			// A new password is a change even when it is the same text:
			// comparing would mean decrypting the old one to no purpose.
			changes[key] = audit.Change{Before: prev, After: markSet}
		case !had || !reflect.DeepEqual(prev, v):
			changes[key] = audit.Change{Before: prev, After: v}
		}
	}
	for _, key := range remove {
		prev, had := old[key]
		switch {
		case !had:
		case fieldByKey[key].secret:
			changes[key] = audit.Change{Before: markSet, After: markCleared}
		default:
			changes[key] = audit.Change{Before: prev}
		}
	}
	return changes, nil
}

// parsePatch checks every field of patch and returns the values to store
// and the keys to remove, or one EINVALID error naming every bad field.
func parsePatch(patch map[string]json.RawMessage) (map[string]any, []string, error) {
	if patch == nil {
		return nil, nil, nodus.Errorf(nodus.EINVALID, "the body must be a JSON object")
	}
	set, bad := map[string]any{}, map[string]string{}
	var remove []string
	for group, raw := range patch {
		if group != GroupBranding && group != GroupEmail && group != GroupRecordings {
			bad[group] = "unknown field"
			continue
		}
		var members map[string]json.RawMessage
		if isNull(raw) || json.Unmarshal(raw, &members) != nil {
			bad[group] = "must be an object of fields"
			continue
		}
		for name, raw := range members {
			key := group + "." + name
			f, ok := fieldByKey[key]
			if !ok {
				bad[key] = "unknown field"
				continue
			}
			if isNull(raw) {
				remove = append(remove, key)
				continue
			}
			v, msg := f.parse(raw)
			if msg != "" {
				bad[key] = msg
				continue
			}
			set[key] = v
		}
	}
	if len(bad) > 0 {
		return nil, nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid settings", Fields: bad}
	}
	return set, remove, nil
}

func isNull(raw json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// additionalData binds a sealed value to its owner and field, so it opens
// only in the row it was written to.
func additionalData(tenantID, key string) []byte {
	owner := tenantID
	if owner == "" {
		owner = "platform"
	}
	return []byte("settings|" + owner + "|" + key)
}

// sealedBytes is a stored secret's sealed bytes: its value is a JSON
// string of their base64.
func sealedBytes(row Setting) ([]byte, error) {
	var text string
	if err := json.Unmarshal([]byte(row.Value), &text); err != nil {
		return nil, nodus.WrapError(err, nodus.EINTERNAL, "stored settings are unreadable")
	}
	sealed, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, nodus.WrapError(err, nodus.EINTERNAL, "stored settings are unreadable")
	}
	return sealed, nil
}

// SealedKeyIDs returns the ids of the master keys the stored secrets (the
// SMTP passwords) are sealed with, each with how many it seals, for
// backups to name the keys a restore needs. It needs the all-tenants
// scope.
func SealedKeyIDs(ctx context.Context, st Store) (map[byte]int, error) {
	ids := map[byte]int{}
	for _, f := range fields {
		if !f.secret {
			continue
		}
		rows, err := st.ListSettingsByKey(ctx, f.key)
		if err != nil {
			return nil, err
		}
		for _, row := range rows {
			sealed, err := sealedBytes(row)
			if err != nil {
				return nil, err
			}
			if id, ok := keyring.KeyID(sealed); ok {
				ids[id]++
			}
		}
	}
	return ids, nil
}

// open decrypts a stored secret.
func (s *Service) open(row Setting) (string, error) {
	sealed, err := sealedBytes(row)
	if err != nil {
		return "", err
	}
	plain, err := s.box.Open(sealed, additionalData(row.TenantID, row.Key))
	if err != nil {
		// Most likely a different master key than the one that sealed it:
		// the secret stays sealed rather than turning into garbage.
		return "", nodus.WrapError(err, nodus.EUNAVAILABLE, "the stored SMTP password cannot be decrypted with this master key")
	}
	return string(plain), nil
}

// ResealSecrets seals again, with the master key whose id is current,
// every stored secret (the SMTP passwords) sealed with another one, and
// returns how many it resealed: after it, the other master keys can be
// removed. It needs the all-tenants scope. A secret whose master key is
// not loaded fails it with EUNAVAILABLE; one changed meanwhile was sealed
// with the current key by that change and is left alone. It may run while
// Nodus serves, and again.
func (s *Service) ResealSecrets(ctx context.Context, current byte) (int, error) {
	n := 0
	for _, f := range fields {
		if !f.secret {
			continue
		}
		rows, err := s.store.ListSettingsByKey(ctx, f.key)
		if err != nil {
			return n, err
		}
		for _, row := range rows {
			sealed, err := sealedBytes(row)
			if err != nil {
				return n, err
			}
			if id, ok := keyring.KeyID(sealed); ok && id == current {
				continue
			}
			plain, err := s.open(row)
			if err != nil {
				return n, err
			}
			again, err := s.box.Seal([]byte(plain), additionalData(row.TenantID, row.Key))
			if err != nil {
				return n, err
			}
			value, err := json.Marshal(base64.StdEncoding.EncodeToString(again))
			if err != nil {
				return n, err
			}
			ok, err := s.store.ReplaceSettingValue(ctx, row.ID, row.Value, string(value))
			if err != nil {
				return n, err
			}
			if ok {
				n++
			}
		}
	}
	return n, nil
}
