package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/store/storetest"
)

// crashWriterEnv makes the test binary act as the writer process of
// TestSQLiteSurvivesSIGKILL.
const crashWriterEnv = "NODUS_TEST_CRASH_WRITER_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashWriterEnv); path != "" {
		crashWriter(path)
		return
	}
	os.Exit(m.Run())
}

// crashWriter inserts rows, each in its own transaction, from several
// goroutines, and prints each id once its commit has returned. It runs
// until it is killed.
func crashWriter(path string) {
	ctx := context.Background()
	db, err := store.Open(ctx, storetest.Config("sqlite:"+path))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	acked := make(chan int, 64)
	for w := range 4 {
		go func() {
			for i := w; ; i += 4 {
				err := db.Write(ctx, func(tx *store.Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO acked (id, body) VALUES (?, ?)", i, fmt.Sprintf("row %d with some padding to fill pages", i))
					return err
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				acked <- i
			}
		}()
	}
	out := bufio.NewWriter(os.Stdout)
	for id := range acked {
		fmt.Fprintln(out, id)
		out.Flush()
	}
}

// TestSQLiteSurvivesSIGKILL kills a process that is writing as fast as it
// can and checks that every write it acknowledged is in the file and that
// the file passes SQLite's integrity check (SECURITY.md check 32, and the
// synchronous=NORMAL promise in the package doc).
func TestSQLiteSurvivesSIGKILL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crash.db")
	db, err := store.Open(ctx, storetest.Config("sqlite:"+path))
	if err != nil {
		t.Fatal(err)
	}
	mustExec(t, db, "CREATE TABLE acked (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
	db.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashWriterEnv+"="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[int]bool{}
	sc := bufio.NewScanner(stdout)
	deadline := time.Now().Add(30 * time.Second)
	for len(acked) < 2000 && sc.Scan() {
		id, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("writer printed %q", sc.Text())
		}
		acked[id] = true
		if time.Now().After(deadline) {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if len(acked) < 100 {
		t.Fatalf("writer acknowledged only %d rows before the deadline", len(acked))
	}

	db, err = store.Open(ctx, storetest.Config("sqlite:"+path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	present := map[int]bool{}
	err = db.Read(ctx, func(tx *store.Tx) error {
		if err := tx.QueryRow(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, "SELECT id FROM acked")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int
			if err := rows.Scan(&id); err != nil {
				return err
			}
			present[id] = true
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if check != "ok" {
		t.Fatalf("integrity_check after SIGKILL: %s", check)
	}
	missing := 0
	for id := range acked {
		if !present[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged writes lost after SIGKILL", missing, len(acked))
	}
	t.Logf("%d acknowledged writes, %d rows present after SIGKILL", len(acked), len(present))
}
