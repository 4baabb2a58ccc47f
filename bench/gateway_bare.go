package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// bareProxyCommand is the hidden subcommand `bench gateway` re-executes
// its own binary with to run the bare proxy as a separate process.
const bareProxyCommand = "bare-proxy"

// bareDebugEnv names the address the bare proxy serves net/http/pprof on
// when set, as NODUS_DEBUG_ADDR does for nodus.
const bareDebugEnv = "BENCH_BARE_DEBUG_ADDR"

// runBareProxy is `bench bare-proxy`: the least a reverse proxy in its own
// process can do, so that the bench can show what crossing into another
// process and back costs on the machine, apart from what Nodus does. It
// prints "listening on http://ADDR" once it accepts connections and serves
// until ctx ends.
func runBareProxy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench "+bareProxyCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "", "base URL of the upstream (http://host:port)")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	conns := fs.Int("conns", 1024, "idle keep-alive connections kept to the upstream")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *upstream == "" {
		return errors.New("-upstream is required")
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if addr := os.Getenv(bareDebugEnv); addr != "" {
		// Profiles and execution traces of the bare proxy, to set beside
		// nodus's (NODUS_DEBUG_ADDR); loopback only, as there.
		if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("%s=%q: want a loopback address and port (127.0.0.1:6061)", bareDebugEnv, addr)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		dln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", bareDebugEnv, err)
		}
		go func() { _ = http.Serve(dln, mux) }()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0 // no limit but the per-host one
	tr.MaxIdleConnsPerHost = *conns
	srv := &http.Server{Handler: bareProxy(*upstream+"/v1/chat/completions", &http.Client{Transport: tr})}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// bareProxy reads the request body, POSTs it to url with the caller's
// Authorization header, and copies status, Content-Type and body back; an
// event stream is flushed after every read, as a gateway must.
func bareProxy(url string, client *http.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), "POST", url, bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		ct := resp.Header.Get("Content-Type")
		if ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		if !strings.HasPrefix(ct, "text/event-stream") {
			_, _ = io.Copy(w, resp.Body)
			return
		}
		rc := http.NewResponseController(w)
		buf := make([]byte, 8<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				if rc.Flush() != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})
}

// startBareProxy runs this binary's bare-proxy subcommand in front of
// upstream, keeping conns idle connections to it, and waits until it
// listens. Under `go run` the binary is the one go built into a temp
// directory; under `go test` it is the test binary, whose TestMain hands
// the subcommand to main.
func startBareProxy(ctx context.Context, dir, upstream string, conns int) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the bench binary to start the bare proxy: %w", err)
	}
	logs := filepath.Join(dir, "bare-proxy.log")
	f, err := os.Create(logs)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(exe, bareProxyCommand, "-upstream", upstream, "-conns", strconv.Itoa(conns))
	cmd.Env = childEnv(nil)
	cmd.Stdout, cmd.Stderr = w, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // as nodus: Ctrl-C reaches the bench only
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("start the bare proxy: %w", err)
	}
	c := &child{cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		base, ok := strings.CutPrefix(strings.TrimSpace(s), "listening on ")
		if !ok {
			c.stop()
			return nil, fmt.Errorf("the bare proxy did not start (%q):\n%s", s, c.tail())
		}
		c.base = base
		return c, nil
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		c.stop()
		return nil, fmt.Errorf("the bare proxy did not listen within 30s:\n%s", c.tail())
	}
}
