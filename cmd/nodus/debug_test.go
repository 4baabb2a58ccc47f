package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestDebugListener: NODUS_DEBUG_ADDR serves pprof profiles on its own
// loopback listener, and nothing of them on the API's.
func TestDebugListener(t *testing.T) {
	vars := nodusEnv(t, "")
	vars["NODUS_DEBUG_ADDR"] = "127.0.0.1:0"
	in := startNodus(t, vars)
	var debugAddr string
	for deadline := time.Now().Add(5 * time.Second); debugAddr == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		sc := bufio.NewScanner(strings.NewReader(in.logs.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving pprof profiles" {
				debugAddr = line.Addr
			}
		}
	}
	if debugAddr == "" {
		t.Fatalf("no debug listener in the log:\n%s", in.logs.String())
	}
	resp, err := http.Get("http://" + debugAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("profile: %d", resp.StatusCode)
	}
	resp, err = http.Get(in.base + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("the API listener serves the profiles")
	}
}
