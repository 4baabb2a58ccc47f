package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version string

// errUsage marks a command-line mistake; main exits 2 for it.
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func exitCode(err error) int {
	var u errUsage
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

const usage = `Nodus: the AI platform in one binary.

Usage:
  nodus serve [flags]              run the API, the UI and the background workers
  nodus migrate up [flags]         apply pending migrations to every database
  nodus migrate down [N] [flags]   roll back the last N (default 1) migrations of one set (--set)
  nodus migrate status [flags]     list every migration of every database and its state
  nodus migrate version [flags]    print the current version of every migration set
  nodus db provision --admin-url postgres://… [--prefix nodus] [--dry-run] [--rotate-passwords]
                                   create the PostgreSQL roles and databases of the production layout
  nodus db check [--admin-url URL] [flags]
                                   compare the configured databases with that layout and the migrations
  nodus admin create-user --email E --username U --role R [--tenant ID] [--password-stdin]
                                   create a user (password generated and printed unless read from stdin)
  nodus admin reset-password LOGIN [--password-stdin]
                                   set a new password and end the user's sessions
  nodus audit verify [flags]       check the audit log's hash chain; fails on any edited or deleted row
  nodus vault status               which master keys the vault needs, and whether it is sealed
  nodus vault add-master-key [--not-current]
                                   add a random key to master.key (rotation, step 1)
  nodus vault rotate-master-key    rewrap every data key, SMTP password and webhook secret under the current master key
  nodus vault rotate-data-key TENANT [--no-reencrypt]
                                   give a tenant a new data key and re-encrypt its secrets
  nodus gateway import --tenant T [--dry-run] [--prune] FILE
                                   import a LiteLLM-style model_list into a tenant's gateway
  nodus kb import --server URL --token TOKEN --kb ID [--workers 4] PATH...
                                   upload a folder's files or a .jsonl file's records to a knowledge base
  nodus backup --out FILE [--include-keys]
                                   archive every database, the blobs and (optionally) the master keys
  nodus restore --in FILE [--force]
                                   verify an archive and restore it into empty databases and data directory
  nodus eval retrieval [--database-url URL] DIR
                                   load a BEIR dataset into a scratch knowledge base and score its search
  nodus version                    print the version
  nodus help                       print this help

Every flag has an environment variable; run "nodus serve -h" to list them.
`

// run is the whole program: main only adds the process's signals and
// environment, so tests call run directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return errUsage{"no command given"}
	}
	switch cmd, rest := args[1], args[2:]; cmd {
	case "serve":
		return helpIsNotAnError(serve(ctx, rest, getenv, stdout, stderr))
	case "migrate":
		return helpIsNotAnError(migrate(ctx, rest, getenv, stdout, stderr))
	case "db":
		return helpIsNotAnError(dbCmd(ctx, rest, getenv, stdout, stderr))
	case "admin":
		return helpIsNotAnError(adminCmd(ctx, rest, getenv, stdin, stdout, stderr))
	case "audit":
		return helpIsNotAnError(auditCmd(ctx, rest, getenv, stdout, stderr))
	case "vault":
		return helpIsNotAnError(vaultCmd(ctx, rest, getenv, stdout, stderr))
	case "gateway":
		return helpIsNotAnError(gatewayCmd(ctx, rest, getenv, stdout, stderr))
	case "backup":
		return helpIsNotAnError(backupCmd(ctx, rest, getenv, stdout, stderr))
	case "restore":
		return helpIsNotAnError(restoreCmd(ctx, rest, getenv, stdout, stderr))
	case "eval":
		return helpIsNotAnError(evalCmd(ctx, rest, stdout, stderr))
	case "kb":
		return helpIsNotAnError(kbCmd(ctx, rest, getenv, stdout, stderr))
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return errUsage{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// helpIsNotAnError turns the -h answer into success: the usage was printed
// as asked.
func helpIsNotAnError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// newFlagSet returns a flag set with every configuration flag; synopsis is
// the command line its usage shows.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: nodus %s\n\nFlags (each also read from the environment variable named):\n", synopsis)
		fs.PrintDefaults()
	}
	addFlags(fs)
	return fs
}

// parseArgs parses flags wherever they stand among the positional
// arguments (`migrate down 2 --set jobs`), and returns the positionals.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func newLogger(w io.Writer, cfg Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// versionString names the build: the release version when set, otherwise
// the VCS revision Go recorded.
func versionString() string {
	v, rev := version, ""
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				rev = s.Value[:12]
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	parts := []string{runtime.Version()}
	if rev != "" {
		parts = append([]string{rev}, parts...)
	}
	return fmt.Sprintf("nodus %s (%s)", v, strings.Join(parts, ", "))
}
