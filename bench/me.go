package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/store"
)

// Targets from the identity issue.
const (
	targetMeRPS = 5000
	targetMeP99 = 5 * time.Millisecond
)

// benchMe starts nodus on SQLite, gives its administrator an API token and
// sends GET /api/v1/me with it from concurrency keep-alive clients for
// duration, then reports throughput and latency percentiles. Clients and
// server share the machine's cores.
func benchMe(duration time.Duration, concurrency int) error {
	tmp, bin, err := buildNodus()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "data")
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "serve", "--addr", addr, "--data-dir", dir, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "NODUS_ADMIN_PASSWORD=bench password 123")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	if err := waitReady("http://" + addr + "/ready"); err != nil {
		return err
	}

	token, err := mintToken(filepath.Join(dir, "auth.db"))
	if err != nil {
		return err
	}
	url := "http://" + addr + "/api/v1/me"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}, Timeout: 5 * time.Second}

	// One request first, so a broken setup fails loudly instead of
	// measuring errors.
	if code, err := get(client, url, token); err != nil || code != 200 {
		return fmt.Errorf("GET /api/v1/me: %d %v", code, err)
	}

	var mu sync.Mutex
	var latencies []time.Duration
	var failures int
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			var mine []time.Duration
			bad := 0
			for time.Now().Before(deadline) {
				start := time.Now()
				code, err := get(client, url, token)
				if err != nil || code != 200 {
					bad++
					continue
				}
				mine = append(mine, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, mine...)
			failures += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(latencies)
	if len(latencies) == 0 {
		return fmt.Errorf("no request succeeded")
	}
	pct := func(p float64) time.Duration { return latencies[int(float64(len(latencies)-1)*p)] }
	rps := float64(len(latencies)) / duration.Seconds()

	host, _ := os.Hostname()
	fmt.Printf("authenticated GET /api/v1/me (bearer token), SQLite, %d clients for %s on the same machine\n", concurrency, duration)
	fmt.Printf("machine: %s, %d CPUs, %s/%s, %s; %s\n\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(),
		time.Now().UTC().Format("2006-01-02"))
	fmt.Printf("%10s %10s %10s %10s %10s %10s\n", "requests", "failed", "req/s", "p50", "p99", "max")
	fmt.Printf("%10d %10d %10.0f %10s %10s %10s\n", len(latencies), failures, rps,
		pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond))
	pass := rps > targetMeRPS && pct(0.99) < targetMeP99 && failures == 0
	verdict := map[bool]string{true: "PASS", false: "FAIL"}[pass]
	fmt.Printf("\ntargets: over %d req/s, p99 under %s, no failures: %s\n", targetMeRPS, targetMeP99, verdict)
	if !pass {
		return fmt.Errorf("targets missed")
	}
	return nil
}

func get(c *http.Client, url, token string) (int, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

func waitReady(url string) error {
	client := &http.Client{Timeout: time.Second}
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(5 * time.Millisecond) {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("nodus not ready after 30s")
}

// mintToken gives the administrator an API token, written straight into
// the auth database (the token API is not needed to measure lookups).
func mintToken(authDB string) (string, error) {
	ctx := context.Background()
	db, err := store.Open(ctx, store.Config{URL: "sqlite:" + authDB})
	if err != nil {
		return "", err
	}
	defer db.Close()
	p, err := db.FindAccountByLogin(ctx, "admin")
	if err != nil {
		return "", err
	}
	secret, hash := identity.NewSecret(identity.TokenPrefix)
	k := &identity.Token{ID: nodus.NewID(), UserID: p.User.ID, Name: "bench", Prefix: secret[:12], Hash: hash,
		CreatedAt: nodus.SystemClock{}.Now()}
	return secret, db.CreateToken(nodus.WithAllTenants(ctx), k)
}
