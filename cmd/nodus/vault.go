package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notify"
	settingsvc "github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/vault"
)

// vaultCmd runs the operator's vault commands:
//
//	nodus vault status
//	nodus vault add-master-key [--not-current]
//	nodus vault rotate-master-key [--batch N]
//	nodus vault rotate-data-key TENANT [--batch N] [--no-reencrypt]
//
// They may run while Nodus serves: each step is idempotent and resumable.
// The procedure is in docs/operations.md.
func vaultCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("vault", "vault status | add-master-key | rotate-master-key | rotate-data-key TENANT [flags]", stderr)
	batch := fs.Int("batch", 500, "rotate-*: data keys or secret versions handled per transaction")
	notCurrent := fs.Bool("not-current", false, "add-master-key: add the key for opening only, keeping the current one (step 1 with several replicas)")
	noReencrypt := fs.Bool("no-reencrypt", false, "rotate-data-key: only add the data key; leave re-encryption of stored versions for later")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errUsage{"vault needs a subcommand: status, add-master-key, rotate-master-key or rotate-data-key"}
	}
	switch sub := pos[0]; {
	case sub == "rotate-data-key" && len(pos) != 2:
		return errUsage{"vault rotate-data-key needs exactly one tenant id"}
	case sub != "rotate-data-key" && len(pos) != 1:
		return errUsage{fmt.Sprintf("vault %s takes no arguments", sub)}
	case sub != "status" && sub != "add-master-key" && sub != "rotate-master-key" && sub != "rotate-data-key":
		return errUsage{fmt.Sprintf("unknown vault subcommand %q", sub)}
	}
	if *batch < 1 {
		return errUsage{"--batch must be at least 1"}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}
	if pos[0] == "add-master-key" {
		return addMasterKey(cfg, !*notCurrent, stdout)
	}

	ring, err := keyring.Load(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		return err
	}
	dbs, err := store.OpenDatabases(ctx, cfg.DatabaseURLs(), cfg.StoreConfig)
	if err != nil {
		return err
	}
	defer dbs.Close()
	auditor := audit.NewService(dbs.DB(store.SetMain), nodus.SystemClock{})
	v, err := vault.NewService(vault.Config{Store: dbs.DB(store.SetVault), Handles: dbs.DB(store.SetMain),
		Keyring: ring, Audit: auditor})
	if err != nil {
		return err
	}
	platform := nodus.WithAllTenants(ctx)
	if pos[0] == "status" {
		_ = v.Unseal(ctx) // a sealed vault is what status reports, not an error
		st, err := v.KeyStatus(platform, vault.System())
		if err != nil {
			return err
		}
		smtp, hooks, err := sealedSecretCounts(platform, dbs)
		if err != nil {
			return err
		}
		out, _ := json.MarshalIndent(struct {
			vault.KeyStatus
			// The other secrets sealed at rest, counted by the master key
			// id that seals them.
			SMTPPasswords  map[int]int `json:"smtp_passwords"`
			WebhookSecrets map[int]int `json:"webhook_secrets"`
		}{st, smtp, hooks}, "", "  ")
		fmt.Fprintf(stdout, "master key source: %s\n%s\n", ring.Source(), out)
		return nil
	}
	if err := v.Unseal(ctx); err != nil {
		return err
	}

	switch pos[0] {
	case "rotate-master-key":
		st, err := v.RotateMasterKey(platform, vault.System(), *batch)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "master key %d now wraps every data key: %d rewrapped, check value resealed: %v\n",
			st.MasterKeyID, st.Rewrapped, st.CheckValue)
		return resealSecrets(platform, ring, dbs, auditor, stdout)
	case "rotate-data-key":
		return rotateDataKey(ctx, dbs, v, pos[1], *batch, *noReencrypt, stdout)
	}
	return nil
}

// addMasterKey adds a random key to the key file and says what to do next.
// A key given in NODUS_MASTER_KEY is the operator's to change: Nodus
// never writes it anywhere.
func addMasterKey(cfg Config, current bool, stdout io.Writer) error {
	if cfg.MasterKey != "" {
		return fmt.Errorf("NODUS_MASTER_KEY is set: add the new key to it yourself (\"1:OLD…,*2:NEW…\", see docs/operations.md); " +
			"Nodus only writes the key file")
	}
	path := masterKeyPath(cfg)
	id, err := keyring.AddKeyToFile(path, current)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added master key %d to %s", id, path)
	if current {
		fmt.Fprintf(stdout, " (current).\nNext: back the file up, restart Nodus, then run: nodus vault rotate-master-key\n")
	} else {
		fmt.Fprintf(stdout, " (opens only).\nNext: give every replica this file and restart them, then make key %d current "+
			"and restart again, then run: nodus vault rotate-master-key\n", id)
	}
	return nil
}

func masterKeyPath(cfg Config) string {
	return strings.TrimRight(cfg.DataDir, "/") + "/" + keyring.KeyFile
}

// rotateDataKey gives a tenant a new data key and, unless told not to,
// re-encrypts its stored versions under it, printing progress per batch.
func rotateDataKey(ctx context.Context, dbs *store.Databases, v *vault.Service, tenantID string, batch int, noReencrypt bool, stdout io.Writer) error {
	if !nodus.ValidID(tenantID) {
		return fmt.Errorf("%q is not a tenant id", tenantID)
	}
	// Tenants live in the auth database; the vault cannot see them.
	if _, err := dbs.DB(store.SetAuth).FindTenant(nodus.WithAllTenants(ctx), tenantID); err != nil {
		return err
	}
	tctx := nodus.WithTenant(ctx, tenantID)
	version, err := v.RotateDataKey(tctx, vault.System(), tenantID)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "tenant %s: data key version %d now seals new writes\n", tenantID, version)
	if noReencrypt {
		fmt.Fprintln(stdout, "stored versions keep their data keys; run again without --no-reencrypt to move them")
		return nil
	}
	st, err := v.ReencryptTenant(tctx, vault.System(), tenantID, batch)
	if err != nil {
		return fmt.Errorf("re-encrypted %d versions, then: %w (run again to finish)", st.Reencrypted, err)
	}
	fmt.Fprintf(stdout, "re-encrypted %d stored versions under data key version %d in %d batches\n",
		st.Reencrypted, st.DataKeyVersion, st.Batches)
	return nil
}

// resealSecrets seals the other secrets kept at rest, the SMTP passwords
// and the webhook signing secrets, with the current master key, so that
// after rotate-master-key no stored value needs an older key.
func resealSecrets(ctx context.Context, ring *keyring.Keyring, dbs *store.Databases, auditor *audit.Service, stdout io.Writer) error {
	settingsBox, err := ring.Sealer("settings")
	if err != nil {
		return err
	}
	smtp, err := settingsvc.NewService(dbs.DB(store.SetAuth), settingsBox, auditor, nodus.SystemClock{}).
		ResealSecrets(ctx, settingsBox.CurrentID())
	if err != nil {
		return fmt.Errorf("reseal the SMTP passwords: %w", err)
	}
	notifyBox, err := ring.Sealer("notify")
	if err != nil {
		return err
	}
	hooks, err := notify.ResealWebhookSecrets(ctx, dbs.DB(store.SetMain), notifyBox, notifyBox.CurrentID())
	if err != nil {
		return fmt.Errorf("reseal the webhook secrets: %w", err)
	}
	fmt.Fprintf(stdout, "master key %d now seals every SMTP password and webhook secret: %d and %d resealed\n",
		settingsBox.CurrentID(), smtp, hooks)
	return nil
}

// sealedSecretCounts counts the SMTP passwords and the webhook signing
// secrets by the id of the master key that seals them. ctx needs the
// all-tenants scope.
func sealedSecretCounts(ctx context.Context, dbs *store.Databases) (smtp, hooks map[int]int, err error) {
	ids, err := settingsvc.SealedKeyIDs(ctx, dbs.DB(store.SetAuth))
	if err != nil {
		return nil, nil, fmt.Errorf("SMTP passwords: %w", err)
	}
	smtp = map[int]int{}
	for id, n := range ids {
		smtp[int(id)] = n
	}
	webhooks, err := dbs.DB(store.SetMain).ListAllWebhooks(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("webhook secrets: %w", err)
	}
	hooks = map[int]int{}
	for _, w := range webhooks {
		if id, ok := keyring.KeyID(w.SealedSecret); ok {
			hooks[int(id)]++
		}
	}
	return smtp, hooks, nil
}
