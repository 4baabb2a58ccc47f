package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

var generatedPassword = regexp.MustCompile(`password: ([A-Z2-7]{26})`)

// instanceDatabases opens the databases an instance started with vars
// uses, closed when the test ends, and returns them with its
// configuration.
func instanceDatabases(t *testing.T, vars map[string]string) (*store.Databases, Config) {
	t.Helper()
	cfg, err := parseConfig(newFlagSet("test", "", io.Discard), env(vars))
	if err != nil {
		t.Fatal(err)
	}
	dbs, err := store.OpenDatabases(context.Background(), cfg.DatabaseURLs(), cfg.StoreConfig)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbs.Close() })
	return dbs, cfg
}

// verifyLogin checks that login signs in with password, using the same
// databases the instance used.
func verifyLogin(t *testing.T, vars map[string]string, login, password string) bool {
	t.Helper()
	dbs, _ := instanceDatabases(t, vars)
	p, err := dbs.DB(store.SetAuth).FindAccountByLogin(context.Background(), login)
	if err != nil {
		t.Fatalf("find %s: %v", login, err)
	}
	ok, err := identity.NewHasher(identity.DefaultParams, 1).Verify(context.Background(), p.User.PasswordHash, password)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestBootstrapAdministrator(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		in := startNodus(t, vars)
		m := generatedPassword.FindStringSubmatch(in.out.String())
		if m == nil {
			t.Fatalf("first start printed no generated password:\n%s", in.out.String())
		}
		password := m[1]
		if strings.Contains(in.logs.String(), password) {
			t.Fatal("the generated password appears in the log")
		}
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}
		if !verifyLogin(t, vars, "admin", password) || verifyLogin(t, vars, "admin", password+"x") {
			t.Fatal("the printed password does not (only) sign the administrator in")
		}

		// A second start creates nobody and prints nothing.
		in = startNodus(t, vars)
		if err := in.stop(t); err != nil {
			t.Fatal(err)
		}
		if in.out.String() != "" {
			t.Fatalf("second start printed:\n%s", in.out.String())
		}
	})
}

func TestBootstrapWithGivenPassword(t *testing.T) {
	vars := map[string]string{"NODUS_DATA_DIR": t.TempDir(), "NODUS_ADMIN_EMAIL": "ops@example.test", "NODUS_ADMIN_PASSWORD": "correct horse battery staple"}
	in := startNodus(t, vars)
	if err := in.stop(t); err != nil {
		t.Fatal(err)
	}
	if in.out.String() != "" || strings.Contains(in.logs.String(), "correct horse") {
		t.Fatalf("a given password was printed or logged:\nout: %s\nlogs: %s", in.out.String(), in.logs.String())
	}
	if !verifyLogin(t, vars, "ops@example.test", "correct horse battery staple") {
		t.Fatal("NODUS_ADMIN_PASSWORD does not sign the administrator in")
	}

	vars["NODUS_DATA_DIR"], vars["NODUS_ADMIN_PASSWORD"] = t.TempDir(), "short"
	err := run(context.Background(), []string{"nodus", "serve", "--addr", "127.0.0.1:0"}, env(vars), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "administrator") {
		t.Fatalf("a too-short NODUS_ADMIN_PASSWORD: %v, want start-up to fail", err)
	}
}

func TestAdminCommands(t *testing.T) {
	storetest.RunURL(t, func(t *testing.T, databaseURL string) {
		vars := nodusEnv(t, databaseURL)
		vars["NODUS_ADMIN_PASSWORD"] = "bootstrap password"
		ctx := context.Background()
		admin := func(stdin string, args ...string) (string, error) {
			var out bytes.Buffer
			err := run(ctx, append([]string{"nodus", "admin"}, args...), env(vars), strings.NewReader(stdin), &out, io.Discard)
			return out.String(), err
		}
		if err := run(ctx, []string{"nodus", "migrate", "up"}, env(vars), nil, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}

		out, err := admin("", "create-user", "--email", "root2@example.test", "--username", "root2", "--role", "super_admin")
		if err != nil {
			t.Fatal(err)
		}
		m := generatedPassword.FindStringSubmatch(out)
		if m == nil || !verifyLogin(t, vars, "root2", m[1]) {
			t.Fatalf("create-user with a generated password:\n%s", out)
		}
		if _, err := admin("", "create-user", "--email", "x@example.test", "--username", "xx", "--role", "viewer"); err == nil ||
			!strings.Contains(err.Error(), "tenant_id") {
			t.Errorf("a viewer without a tenant: %v, want an error naming tenant_id", err)
		}
		if _, err := admin("", "create-user", "--email", "ROOT2@example.test", "--username", "other", "--role", "super_admin"); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("duplicate email: %v, want conflict", err)
		}

		if out, err := admin("a brand new password\n", "reset-password", "root2", "--password-stdin"); err != nil || generatedPassword.MatchString(out) {
			t.Fatalf("reset-password from stdin: %q, %v", out, err)
		}
		if !verifyLogin(t, vars, "root2", "a brand new password") || verifyLogin(t, vars, "root2", m[1]) {
			t.Fatal("reset-password did not replace the password")
		}
		if _, err := admin("", "reset-password", "nobody"); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("reset-password of an unknown login: %v", err)
		}
		if _, err := admin("", "reset-password"); exitCode(err) != 2 {
			t.Errorf("reset-password without a login: %v, want a usage error", err)
		}
	})
}
