package main

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/store/storetest"
)

// vaultLog returns the message of the start-up log line about the vault.
func vaultLog(t *testing.T, logs string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct{ Msg, Err string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "vault ") {
			return line.Msg + " " + line.Err
		}
	}
	t.Fatalf("no vault line in the start-up log:\n%s", logs)
	return ""
}

// TestServeVaultSealed: Nodus opens the vault with the key it created; a
// start with the wrong key leaves the vault sealed and everything else
// serving; a key text with the old key and a new current one opens it.
func TestServeVaultSealed(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		in := startNodus(t, vars)
		if got := vaultLog(t, in.logs.String()); !strings.HasPrefix(got, "vault unsealed") {
			t.Fatalf("first start: %s", got)
		}
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}
		fileKey, err := os.ReadFile(filepath.Join(vars["NODUS_DATA_DIR"], "master.key"))
		if err != nil {
			t.Fatal(err)
		}

		other := make([]byte, 32)
		_, _ = rand.Read(other)
		wrong := base64.StdEncoding.EncodeToString(other)
		vars["NODUS_MASTER_KEY"] = wrong
		in = startNodus(t, vars)
		got := vaultLog(t, in.logs.String())
		if !strings.HasPrefix(got, "vault sealed") || !strings.Contains(got, "vault is sealed: ") {
			t.Fatalf("start with a wrong key: %s", got)
		}
		if strings.Contains(in.logs.String(), wrong) || strings.Contains(in.logs.String(), strings.TrimSpace(string(fileKey))) {
			t.Fatal("a master key is in the log")
		}
		resp, err := http.Get(in.base + "/health")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("health while the vault is sealed: %v %v", resp, err)
		}
		resp.Body.Close()
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}

		// Rotation's first step: the old key (bare, so id 1) and a new key 2,
		// current, in NODUS_MASTER_KEY.
		vars["NODUS_MASTER_KEY"] = strings.TrimSpace(string(fileKey)) + ",2:" + wrong
		in = startNodus(t, vars)
		if got := vaultLog(t, in.logs.String()); !strings.HasPrefix(got, "vault unsealed") {
			t.Fatalf("start with keys 1 and 2: %s", got)
		}
	})
}
