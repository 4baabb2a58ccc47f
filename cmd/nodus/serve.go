package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/nodus-os/nodus/internal/agent"
	"github.com/nodus-os/nodus/internal/audit"
	"github.com/nodus-os/nodus/internal/background"
	"github.com/nodus-os/nodus/internal/blob"
	"github.com/nodus-os/nodus/internal/chat"
	"github.com/nodus-os/nodus/internal/chat/chatwire"
	"github.com/nodus-os/nodus/internal/egress"
	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/httpapi"
	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/jobs"
	"github.com/nodus-os/nodus/internal/keyring"
	"github.com/nodus-os/nodus/internal/knowledge"
	"github.com/nodus-os/nodus/internal/mail"
	"github.com/nodus-os/nodus/internal/memory"
	"github.com/nodus-os/nodus/internal/memory/memorywire"
	"github.com/nodus-os/nodus/internal/metrics"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notebook"
	"github.com/nodus-os/nodus/internal/notebook/notebookwire"
	"github.com/nodus-os/nodus/internal/notify"
	"github.com/nodus-os/nodus/internal/notify/notifywire"
	"github.com/nodus-os/nodus/internal/recordings"
	"github.com/nodus-os/nodus/internal/recordings/recordingswire"
	// Aliased: package main has a func named settings (config.go).
	settingsvc "github.com/nodus-os/nodus/internal/settings"
	"github.com/nodus-os/nodus/internal/store"
	"github.com/nodus-os/nodus/internal/tracing"
	"github.com/nodus-os/nodus/internal/tracing/tracewire"
	// Aliased: package main has a const named usage (run.go).
	usagesvc "github.com/nodus-os/nodus/internal/usage"
	"github.com/nodus-os/nodus/internal/vault"
	"github.com/nodus-os/nodus/internal/web"
)

// maintenanceInterval is how often the databases are optimised and their
// WAL files truncated.
const maintenanceInterval = 6 * time.Hour

// serveGCPercent is the garbage collector's target for serve when GOGC is
// not set.
const serveGCPercent = 200

// requeueInterval is how often documents left pending or processing (a
// lost job, a crashed run) are queued for ingestion again.
const requeueInterval = time.Minute

// spendRetentionInterval is how often spend rows past their retention
// (NODUS_GATEWAY_SPEND_RETENTION_DAYS) are deleted.
const spendRetentionInterval = time.Hour

// keyExpiryInterval is how often gateway keys expiring soon are looked
// for (each is notified once).
const keyExpiryInterval = time.Hour

// tracingRetentionInterval is how often traces past their tenant's
// retention are deleted.
const tracingRetentionInterval = time.Hour

// tracingRollupInterval is how often the days traces were written to are
// rolled up: how far dashboards lag ingestion.
const tracingRollupInterval = time.Minute

// Sign-in throttling: failures allowed per (login, address) and per login
// in each window before further attempts wait for the window to end.
const (
	loginPairLimit    = 20
	loginAccountLimit = 100
	loginWindow       = 15 * time.Minute
)

// serve runs Nodus until ctx ends, then drains in-flight requests and jobs.
// warmTermsPerKB is how many of each knowledge base's most frequent terms
// serve reads into the search cache at start.
const warmTermsPerKB = 64

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "serve [flags]", stderr)
	if pos, err := parseArgs(fs, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return errUsage{fmt.Sprintf("serve takes no arguments, got %q", pos)}
	}
	cfg, err := parseConfig(fs, getenv)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg)
	logger.Info("starting nodus", "version", versionString(), "config", cfg)
	start := time.Now()
	if getenv("GOGC") == "" {
		// A gateway allocates per request; collecting at 200% rather than
		// Go's 100% costs heap headroom (bounded further by GOMEMLIMIT
		// when set) and gave ~25% more requests a second through the
		// gateway on a 2-core machine. GOGC, when set, is obeyed.
		debug.SetGCPercent(serveGCPercent)
	}
	// The trace recorder runs on a thread of lower priority (package
	// background); one P more than the cores keeps that thread, when the
	// kernel sets it aside, from holding a P requests need. GOMAXPROCS,
	// when set, is obeyed.
	procs := background.ExtraProcs()

	ring, err := keyring.Load(cfg.MasterKey, cfg.DataDir)
	if err != nil {
		return err
	}
	logger.Info("master key loaded", "source", ring.Source())
	if ring.Created() {
		logger.Warn("master key created: back it up, apart from the database backups; without it encrypted settings and vault secrets cannot be read",
			"path", ring.Source())
	}
	settingsBox, err := ring.Sealer("settings")
	if err != nil {
		return err
	}
	notifyBox, err := ring.Sealer("notify")
	if err != nil {
		return err
	}

	dbs, err := store.OpenDatabases(ctx, cfg.DatabaseURLs(), func(url string) store.Config {
		sc := cfg.StoreConfig(url)
		sc.Logger = logger
		return sc
	})
	if err != nil {
		return err
	}
	defer dbs.Close()
	sets, queueSet, err := migrationSets(dbs)
	if err != nil {
		return err
	}
	if cfg.AutoMigrate {
		if err := migrateUp(ctx, sets, logger); err != nil {
			return err
		}
	}

	ids, auditor := newIdentity(dbs)
	settingsService := settingsvc.NewService(dbs.DB(store.SetAuth), settingsBox, auditor, nodus.SystemClock{})
	// The vault keeps secrets in its own database and handles in the main
	// one. A missing or wrong master key leaves it sealed (its calls
	// answer unavailable); the rest of Nodus serves anyway.
	// Notifications are built once egress is (below); the vault, built
	// first, tells them of rotated secrets through this variable.
	var notifyService *notify.Service
	vaultService, err := vault.NewService(vault.Config{Store: dbs.DB(store.SetVault), Handles: dbs.DB(store.SetMain),
		Keyring: ring, Audit: auditor, TenantActive: tenantActive(ids),
		SecretRotated: func(ctx context.Context, tenantID string, at vault.Location, version int, by string) {
			if notifyService != nil {
				notifywire.SecretRotated(notifyService, logger)(ctx, tenantID, at, version, by)
			}
		}})
	if err != nil {
		return err
	}
	if err := vaultService.Unseal(ctx); err != nil {
		logger.Error("vault sealed", "err", err)
		// A database that was down or not yet migrated may come back.
		go vaultService.RetryUnseal(ctx, 15*time.Second, func() { logger.Info("vault unsealed") })
	} else {
		logger.Info("vault unsealed", "master_key_id", ring.CurrentID(), "master_keys", len(ring.IDs()))
	}
	if err := bootstrap(ctx, ids, cfg, sets, stdout, logger); err != nil {
		return err
	}

	reg := metrics.NewRegistry()
	reg.RegisterRuntime()
	dbs.RegisterMetrics(reg)
	// Every outbound connection goes through egress: the policies live in
	// the main database, beside the audit log its refusals go to.
	// A tenant's refused requests are notified to its admins (once per
	// host and hour), by the notifications built below.
	egressService, err := egress.NewService(dbs.DB(store.SetMain), egress.Options{Logger: logger, Metrics: reg, Audit: auditor,
		Denied: notifywire.EgressDenials(func() *notify.Service { return notifyService }, logger, time.Now)})
	if err != nil {
		return err
	}
	// Email (the settings' test email; notifications later) is sent over
	// connections egress opens, checked against the tenant's policy.
	mailer, err := mail.NewSender(mail.Options{Dial: egressService.Dial})
	if err != nil {
		return err
	}
	settingsService.UseMailer(mailer)

	// Notifications: in-app, email with the tenant's settings, and
	// webhooks through egress; their email and webhook jobs are queued
	// with the event, on the queue built below.
	var queue *jobs.Queue
	notifyService, err = notify.NewService(notify.Config{
		Store:     notifywire.Store{DB: dbs.DB(store.SetMain), Queue: func() *jobs.Queue { return queue }},
		Directory: notifywire.Directory{Identity: ids}, Mailer: notifywire.Mailer{Settings: settingsService, Sender: mailer},
		Egress: egressService, Sealer: notifyBox, Audit: auditor, Logger: logger})
	if err != nil {
		return err
	}
	ids.AddTenantPurger(notifyService.PurgeTenant)

	// Expired machine-identity tokens are refused anyway; this keeps
	// their table small. Every replica may run it: it only deletes.
	cleanCtx, stopCleaning := context.WithCancel(ctx)
	cleaned := make(chan struct{})
	go func() {
		defer close(cleaned)
		cleanMachineTokens(cleanCtx, vaultService, machineTokenCleanupInterval, logger)
	}()
	defer func() { stopCleaning(); <-cleaned }() // before the databases close

	// Deleting a tenant purges what it owns in the other databases first.
	ids.AddTenantPurger(func(ctx context.Context, id string) error {
		return vaultService.PurgeTenant(ctx, vault.System(), id)
	})
	ids.AddTenantPurger(egressService.PurgeTenant)

	// LLM tracing (Langfuse's ingestion API) in its own database; a
	// deactivated tenant's key pairs are refused, and generations sent
	// without cost are priced at the gateway's prices (the gateway is set
	// below, before the server listens).
	var gatewayAdmin *gateway.Service
	tracingService, err := tracing.NewService(tracing.Config{Store: dbs.DB(store.SetTracing), Logger: logger,
		TenantActive: tenantActive(ids),
		Prices: func(ctx context.Context, tenantID, model string) (tracing.ModelPrice, bool) {
			if gatewayAdmin == nil {
				return tracing.ModelPrice{}, false
			}
			return tracewire.Prices(gatewayAdmin)(ctx, tenantID, model)
		}})
	if err != nil {
		return err
	}
	ids.AddTenantPurger(tracingService.PurgeTenant)
	// Nodus's own traces (gateway calls, chat turns) are written by a
	// recorder in the background; it flushes and stops before the
	// databases close, after the gateway's last call.
	recorder := tracingService.NewRecorder()
	reg.CounterFunc("nodus_tracing_recorder_written_total", "Nodus's own tracing records (a gateway call, a chat turn's events) written to the tracing database.",
		nil, func() []metrics.Sample { return []metrics.Sample{{Value: float64(recorder.Written())}} })
	reg.CounterFunc("nodus_tracing_recorder_dropped_total", "Nodus's own tracing records dropped because the recorder's buffer was full (the tracing database far behind).",
		nil, func() []metrics.Sample { return []metrics.Sample{{Value: float64(recorder.Dropped())}} })
	reg.GaugeFunc("nodus_tracing_recorder_queued", "Nodus's own tracing records waiting in the recorder's buffer.",
		nil, func() []metrics.Sample { return []metrics.Sample{{Value: float64(recorder.Queued())}} })
	recordCtx, stopRecording := context.WithCancel(context.WithoutCancel(ctx))
	go recorder.Run(recordCtx)
	defer func() {
		stopRecording()
		recorder.Wait()
	}()

	// The gateway: its own database, provider keys through vault handles,
	// every upstream call through egress, every call a generation in
	// tracing.
	gwCfg := gateway.Config{Store: dbs.DB(store.SetGateway), Secrets: vaultKeys{vaultService},
		Egress: egressService, Audit: auditor, Logger: logger, Metrics: reg,
		BudgetAlerts: notifywire.BudgetAlerts(notifyService, logger)}
	if gwDB := dbs.DB(store.SetGateway); cfg.GatewayShared == "on" || cfg.GatewayShared == "auto" && gwDB.Dialect() == store.Postgres {
		gwCfg.Quotas = gwDB
	}
	if cfg.TraceGatewayCalls != "none" {
		gwCfg.Calls = tracewire.GatewayCalls{Recorder: recorder, OnlyTraced: cfg.TraceGatewayCalls == "traced"}
	}
	gatewayService, err := gateway.NewService(gwCfg)
	if err != nil {
		return err
	}
	ids.AddTenantPurger(gatewayService.PurgeTenant)
	// Without its tables (migrations not applied) the gateway cannot load
	// budgets, so its routes are not served at all rather than served
	// without them; /ready says why.
	var gatewayRoutes interface {
		Routes() map[string]http.Handler
	}
	if err := gatewayService.Start(ctx); err != nil {
		logger.Warn("gateway not started: run `nodus migrate up`", "err", err)
	} else {
		gatewayRoutes, gatewayAdmin = gatewayService, gatewayService
	}

	// Knowledge bases: their documents' bytes live in a blob store under
	// the data dir. Temp files of uploads a crash cut short are swept at
	// start; an hour's margin never touches an upload in progress.
	blobs, err := blob.NewLocal(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return err
	}
	defer blobs.Close()
	if n, err := blobs.Sweep(ctx, nodus.SystemClock{}.Now().Add(-time.Hour)); err != nil {
		logger.Warn("blob sweep failed", "err", err)
	} else if n > 0 {
		logger.Info("blob sweep removed leftover uploads", "files", n)
	}
	// An upload queues its document's ingestion in the main database,
	// where River's tables are. The queue is built below, after the
	// workers that need knowledgeService; uploads only arrive once the
	// server listens, by which time it is set.
	enqueue := func(ctx context.Context, tenantID, documentID string) error {
		return dbs.DB(store.SetMain).Write(ctx, func(tx *store.Tx) error {
			_, err := queue.InsertTx(ctx, tx, jobs.IngestArgs{TenantID: tenantID, DocumentID: documentID}, nil)
			return err
		})
	}
	// Chunks and queries are embedded through the gateway in process, as
	// their tenant: its models, budgets and spend log apply.
	var embedder knowledge.Embedder
	if gatewayAdmin != nil {
		embedder = knowledge.EmbedFunc(func(ctx context.Context, tenantID, model string, texts []string) ([][]float32, error) {
			return gatewayAdmin.EmbedTexts(ctx, gateway.Caller{TenantID: tenantID}, model, texts)
		})
	}
	knowledgeService, err := knowledge.NewService(knowledge.Config{Store: dbs.DB(store.SetMain), Blobs: blobs, Audit: auditor,
		Logger: logger, Enqueue: enqueue, Egress: egressService, Embedder: embedder,
		Notify: notifywire.Documents(notifyService, logger)})
	if err != nil {
		return err
	}
	// Deleting a tenant removes its knowledge bases, documents, chunks and
	// the documents' files.
	ids.AddTenantPurger(knowledgeService.PurgeTenant)
	// Agent sessions (ADK's SessionService); deleting a tenant removes them.
	agentService, err := agent.NewService(agent.Config{Store: dbs.DB(store.SetMain)})
	if err != nil {
		return err
	}
	ids.AddTenantPurger(agentService.PurgeTenant)

	// Long-term memory (ADK's MemoryService, mem0's job): facts are
	// extracted and embedded through the gateway, as the user.
	memCfg := memory.Config{Store: dbs.DB(store.SetMain), Logger: logger}
	if gatewayAdmin != nil {
		memCfg.Models, memCfg.Embedder = memorywire.Models{Service: gatewayAdmin}, memorywire.Embedder{Service: gatewayAdmin}
	}
	memoryService, err := memory.NewService(memCfg)
	if err != nil {
		return err
	}
	ids.AddTenantPurger(memoryService.PurgeTenant)

	// Chatbots answer from knowledge bases through the gateway in
	// process, as the user chatting; those with memory on recall the
	// user's memories and queue each exchange to be remembered.
	chatCfg := chat.Config{Store: dbs.DB(store.SetMain), Knowledge: chatwire.Knowledge{Service: knowledgeService},
		Quotas: tenantQuotas{ids}, Audit: auditor, Logger: logger, Tracer: chatwire.Tracer{Recorder: recorder},
		Memory: memorywire.ChatMemory{Service: memoryService, Enqueue: func(ctx context.Context, r chat.RememberRequest) error {
			return dbs.DB(store.SetMain).Write(ctx, func(tx *store.Tx) error {
				_, err := queue.InsertTx(ctx, tx, jobs.MemoryArgs(r), nil)
				return err
			})
		}}}
	if gatewayAdmin != nil {
		chatCfg.Models = chatwire.Models{Service: gatewayAdmin}
	}
	chatService, err := chat.NewService(chatCfg)
	if err != nil {
		return err
	}
	ids.AddTenantPurger(chatService.PurgeTenant)

	// Usage metrics per day, tenant, chatbot, user and model, rebuilt from
	// the main database's chats and documents and the gateway's spend.
	usageCfg := usagesvc.Config{Store: dbs.DB(store.SetMain), Logger: logger}
	if gatewayAdmin != nil {
		usageCfg.Gateway = dbs.DB(store.SetGateway)
	}
	usageService, err := usagesvc.NewService(usageCfg)
	if err != nil {
		return err
	}
	ids.AddTenantPurger(usageService.PurgeTenant)

	// Recordings are transcribed and summarised through the gateway in
	// process, as their uploader, with the tenant's models from the
	// settings; a speech model set there resumes those waiting for one.
	recCfg := recordings.Config{Store: recordingswire.Store{DB: dbs.DB(store.SetMain), Queue: func() *jobs.Queue { return queue }},
		Blobs: blobs, Settings: recordingswire.Settings{Service: settingsService},
		Knowledge: recordingswire.Knowledge{Service: knowledgeService}, Notify: recordingswire.Notify(notifyService, logger),
		Audit: auditor, Logger: logger, MaxBytes: cfg.RecordingMaxBytes}
	if gatewayAdmin != nil {
		recCfg.Transcriber, recCfg.Models = recordingswire.Gateway{Service: gatewayAdmin}, recordingswire.Gateway{Service: gatewayAdmin}
	}
	recordingService, err := recordings.NewService(recCfg)
	if err != nil {
		return err
	}
	ids.AddTenantPurger(recordingService.PurgeTenant)
	settingsService.OnUpdate(recordingService.ResumeTenant)

	// Notebooks (Llibreta): sources read from the knowledge bases, the web
	// through egress, recordings and pasted text; chats and summaries through the
	// gateway in process, with the notebook's or the tenant's model. Each
	// source's summary job is queued with it. A recording source is the
	// transcript of one of the user's own recordings.
	nbCfg := notebook.Config{Store: notebookwire.Store{DB: dbs.DB(store.SetMain), Queue: func() *jobs.Queue { return queue }},
		Documents: notebookwire.Documents{DB: dbs.DB(store.SetMain)}, Users: notebookwire.Users{Identity: ids},
		Web: egressService, Defaults: notebookwire.Defaults{Settings: settingsService}, Audit: auditor, Logger: logger,
		Recordings: notebookwire.Recordings{Service: recordingService}}
	if gatewayAdmin != nil {
		nbCfg.Models = notebookwire.Models{Service: gatewayAdmin}
	}
	notebookService, err := notebook.NewService(nbCfg)
	if err != nil {
		return err
	}
	ids.AddTenantPurger(notebookService.PurgeTenant)

	workers := river.NewWorkers()
	jobs.AddMemory(workers, func(ctx context.Context, args jobs.MemoryArgs) error {
		return memorywire.Write(ctx, chatService, memoryService, chat.RememberRequest(args))
	})
	jobs.AddIngest(workers, jobs.IngestFunc(func(ctx context.Context, tenantID, documentID string) error {
		return knowledgeService.Ingest(ctx, tenantID, documentID, knowledge.IngestOptions{})
	}))
	// A failure a retry cannot fix (the webhook was deleted, the tenant
	// has no email settings) cancels the job instead of retrying it.
	permanent := func(err error) error {
		if errors.Is(err, notify.ErrPermanent) {
			logger.Info("notification job ended", "err", err)
			return river.JobCancel(err)
		}
		return err
	}
	jobs.AddNotebook(workers, func(ctx context.Context, a jobs.NotebookSummaryArgs) error {
		return notebookService.Summarize(ctx, a.TenantID, a.NotebookID, a.SourceID)
	})
	jobs.AddNotify(workers, func(ctx context.Context, a jobs.NotifyEmailArgs) error {
		return permanent(notifyService.SendEmail(ctx, a.TenantID, a.NotificationID))
	}, func(ctx context.Context, a jobs.WebhookArgs, attempt int) error {
		return permanent(notifyService.Deliver(ctx, a.TenantID, a.WebhookID, a.EventID, attempt))
	})
	periodic := []*river.PeriodicJob{jobs.AddMaintenance(workers, dbs.Unique(), maintenanceInterval),
		jobs.AddTracingRetention(workers, tracingService, tracingRetentionInterval, nil),
		jobs.AddTracingRollup(workers, tracingService, tracingRollupInterval),
		jobs.AddUsageRollup(workers, usageService, cfg.UsageRollupEvery),
		jobs.AddRequeue(workers, knowledgeService, requeueInterval),
		jobs.AddRecordings(workers, recordingService.Process, recordingService.ResumeStalled, requeueInterval)}
	if gatewayAdmin != nil {
		// Owners and admins hear of keys expiring within a week, once per
		// key and expiry.
		periodic = append(periodic, jobs.AddKeyExpiry(workers, notifywire.KeyExpiry{Keys: dbs.DB(store.SetGateway),
			Notify: notifyService, Logger: logger}, keyExpiryInterval))
	}
	if cfg.SpendRetentionDays > 0 && gatewayAdmin != nil {
		periodic = append(periodic, jobs.AddSpendRetention(workers, gatewayService,
			time.Duration(cfg.SpendRetentionDays)*24*time.Hour, spendRetentionInterval, nil))
	}
	queue, err = jobs.New(dbs.DB(store.SetMain), workers, jobs.Config{
		Workers:      cfg.JobWorkers,
		PollInterval: cfg.JobPollInterval,
		StopTimeout:  cfg.ShutdownTimeout,
		PeriodicJobs: periodic,
	}, logger, reg)
	if err != nil {
		return err
	}

	menus := identity.NewMenuService(dbs.DB(store.SetAuth), auditor, nodus.SystemClock{})
	api := httpapi.NewServer(httpapi.Deps{
		Logger:       logger,
		Metrics:      reg,
		Ready:        readiness(dbs, sets, logger),
		Version:      versionString(),
		Identity:     ids,
		Audit:        auditor,
		Menus:        menus,
		Settings:     settingsService,
		Vault:        vaultService,
		Egress:       egressService,
		Gateway:      gatewayRoutes,
		GatewayAdmin: gatewayAdmin,
		Knowledge:    knowledgeService,
		Agent:        agentService,
		Chat:         chatService,
		Memory:       memoryService,
		Tracing:      tracingService,
		Notify:       notifyService,
		Usage:        usageService,
		Recordings:   recordingService,
		Notebooks:    notebookService,
	}, httpapi.Config{MaxBodyBytes: cfg.MaxBodyBytes, RequestTimeout: cfg.RequestTimeout,
		TrustedProxies: cfg.TrustedProxies})
	// The browser UI over the same services, at the paths it serves;
	// everything else (the API, the gateway, probes) goes to the API.
	ui, err := web.New(web.Deps{Logger: logger, Identity: ids, Menus: menus, Settings: settingsService,
		Knowledge: knowledgeService, Chat: chatService, Gateway: gatewayAdmin,
		Tracing: tracingService, Memory: memoryService, Notify: notifyService, Recordings: recordingService, Usage: usageService,
		Audit: auditor, Vault: vaultService, Egress: egressService, Notebooks: notebookService}, web.Config{RequestTimeout: cfg.RequestTimeout, TrustedProxies: cfg.TrustedProxies})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           web.Mount(ui, api),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	// Open event streams end at once when shutdown starts, rather than
	// holding the drain for its whole timeout.
	srv.RegisterOnShutdown(api.Drain)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if cfg.DebugAddr != "" {
		stopDebug, err := serveDebug(cfg.DebugAddr, logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopDebug()
	}

	// The queue's tables exist only once its migrations ran; without them
	// Nodus still serves, and /ready says why it is not ready.
	queueStarted := false
	if st, err := queueSet.Status(ctx); err == nil && st.Pending() == 0 {
		// River stops when its start context ends; shutdown stops it
		// explicitly instead, after the HTTP server has drained.
		if err := queue.Start(context.WithoutCancel(ctx)); err != nil {
			ln.Close()
			return err
		}
		queueStarted = true
	} else {
		logger.Warn("job queue not started: its migrations are not applied; run `nodus migrate up`")
	}
	logger.Info("listening", "addr", "http://"+ln.Addr().String(), "startup", time.Since(start).Round(time.Millisecond), "gomaxprocs", procs)

	// Warm full-text search: the lists of the most frequent terms are the
	// slow ones to read at a first search. In the background, bounded by
	// the cache; the server answers meanwhile.
	// It ends, and is waited for, before serve returns and the databases
	// close, whichever way serve returns.
	warmCtx, stopWarm := context.WithCancel(ctx)
	warmed := make(chan struct{})
	defer func() {
		stopWarm()
		<-warmed
	}()
	go func() {
		defer close(warmed)
		began := time.Now()
		n, err := dbs.DB(store.SetMain).WarmSearchCache(nodus.WithAllTenants(warmCtx), warmTermsPerKB)
		if err != nil && warmCtx.Err() == nil {
			logger.Warn("search cache not warmed", "err", err)
			return
		}
		if n > 0 {
			logger.Info("search cache warmed", "lists", n, "duration", time.Since(began).Round(time.Millisecond))
		}
		began = time.Now()
		n, err = dbs.DB(store.SetMain).WarmVectors(nodus.WithAllTenants(warmCtx))
		if err != nil && warmCtx.Err() == nil {
			logger.Warn("vectors not loaded for search", "err", err)
			return
		}
		if n > 0 {
			logger.Info("vectors loaded for search", "vectors", n, "duration", time.Since(began).Round(time.Millisecond))
		}
		// Start-up is over. Migrations, templates and warming left
		// garbage; give its pages back to the OS now rather than as the
		// scavenger gets to them.
		debug.FreeOSMemory()
	}()

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("drain http: %w", err))
		srv.Close()
	}
	// After the drain: what the last requests spent is written.
	if err := gatewayService.Close(sctx); err != nil {
		errs = append(errs, fmt.Errorf("write spend logs: %w", err))
	}
	if queueStarted {
		if err := queue.Stop(sctx); err != nil {
			errs = append(errs, fmt.Errorf("stop jobs: %w", err))
		}
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, err)
	}
	logger.Info("stopped")
	return errors.Join(errs...)
}

// vaultKeys resolves a gateway deployment's key handle through the vault,
// on behalf of Nodus itself.
type vaultKeys struct{ v *vault.Service }

func (k vaultKeys) ResolveKey(ctx context.Context, tenantID, handleID string) (string, []string, error) {
	r, err := k.v.ResolveHandle(nodus.WithTenant(ctx, tenantID), handleID, "")
	if err != nil {
		return "", nil, err
	}
	return r.Value.Reveal(), r.AllowedHosts, nil
}

// migrationSets returns every migration set: each module's SQL set, then
// the job queue's schema in the main database, which it also returns alone.
func migrationSets(dbs *store.Databases) ([]store.MigrationSet, store.MigrationSet, error) {
	sets, err := dbs.MigrationSets()
	if err != nil {
		return nil, nil, err
	}
	q, err := jobs.NewMigrations(dbs.DB(store.SetMain))
	if err != nil {
		return nil, nil, err
	}
	return append(sets, q), q, nil
}

func migrateUp(ctx context.Context, sets []store.MigrationSet, logger *slog.Logger) error {
	for _, s := range sets {
		applied, err := s.Up(ctx)
		if err != nil {
			return migrateError(err)
		}
		if len(applied) > 0 {
			logger.Info("migrations applied", "set", s.Name(), "versions", applied)
		}
	}
	return nil
}

// readiness returns the /ready check: every database answers within a
// short timeout and every migration set has nothing pending.
func readiness(dbs *store.Databases, sets []store.MigrationSet, logger *slog.Logger) func(context.Context) httpapi.Readiness {
	return func(ctx context.Context) httpapi.Readiness {
		rd := httpapi.Readiness{Ready: true}
		fail := func(name, detail string, err error) {
			rd.Ready = false
			rd.Checks = append(rd.Checks, httpapi.Check{Name: name, Status: "failed", Detail: detail})
			logger.Warn("readiness check failed", "check", name, "err", err)
		}
		for _, db := range dbs.Unique() {
			name := "database:" + dbs.Label(db)
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := db.Ping(pctx)
			cancel()
			if err != nil {
				fail(name, "unreachable", err)
				continue
			}
			rd.Checks = append(rd.Checks, httpapi.Check{Name: name, Status: "ok"})
		}
		for _, s := range sets {
			name := "migrations:" + s.Name()
			st, err := s.Status(ctx)
			switch {
			case err != nil:
				fail(name, "cannot read migration history", err)
			case st.Pending() > 0:
				fail(name, fmt.Sprintf("%d migrations pending; run `nodus migrate up`", st.Pending()), nil)
			default:
				rd.Checks = append(rd.Checks, httpapi.Check{Name: name, Status: "ok", Detail: fmt.Sprintf("version %d", st.Current())})
			}
		}
		return rd
	}
}

// machineTokenCleanupInterval is how often expired vault machine tokens
// are deleted.
const machineTokenCleanupInterval = 10 * time.Minute

// cleanMachineTokens deletes expired vault machine tokens every interval
// until ctx ends.
func cleanMachineTokens(ctx context.Context, v *vault.Service, every time.Duration, logger *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := v.DeleteExpiredMachineTokens(ctx); err != nil {
			if ctx.Err() != nil {
				return // shutting down
			}
			logger.Warn("vault machine token cleanup failed", "err", err)
		} else if n > 0 {
			logger.Debug("vault machine tokens deleted", "expired", n)
		}
	}
}

// tenantActive tells the vault whether a tenant (in the auth database,
// which the vault cannot read) is active: a deactivated or deleted
// tenant's machine identities cannot log in and their tokens stop.
func tenantActive(ids *identity.Service) func(ctx context.Context, tenantID string) (bool, error) {
	return func(ctx context.Context, tenantID string) (bool, error) {
		t, err := ids.Tenant(nodus.WithTenant(ctx, tenantID), tenantID)
		if nodus.ErrorCode(err) == nodus.ENOTFOUND {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return t.IsActive, nil
	}
}

// newIdentity builds the identity service over the auth database, and the
// audit service over the main one, which identity records into.
func newIdentity(dbs *store.Databases) (*identity.Service, *audit.Service) {
	clock := nodus.SystemClock{}
	auditor := audit.NewService(dbs.DB(store.SetMain), clock)
	return identity.NewService(dbs.DB(store.SetAuth), identity.NewHasher(identity.DefaultParams, 0),
		identity.NewThrottle(loginPairLimit, loginAccountLimit, loginWindow), auditor, clock), auditor
}

// bootstrap creates the first super_admin on an empty database. A
// generated password goes to stdout, once, never to the log.
func bootstrap(ctx context.Context, ids *identity.Service, cfg Config, sets []store.MigrationSet, stdout io.Writer, logger *slog.Logger) error {
	for _, s := range sets {
		if s.Name() != store.SetAuth && s.Name() != store.SetMain {
			continue
		}
		if st, err := s.Status(ctx); err != nil || st.Pending() > 0 {
			logger.Warn("first administrator not checked: migrations pending", "set", s.Name())
			return nil
		}
	}
	u, generated, err := ids.Bootstrap(ctx, cfg.AdminEmail, cfg.AdminPassword)
	if err != nil {
		return fmt.Errorf("create the first administrator: %w", err)
	}
	if u == nil {
		return nil
	}
	logger.Info("first administrator created", "username", u.Username, "email", u.Email, "password_generated", generated != "")
	// Hashing the password took argon2id's 19 MiB; give it back to the OS
	// now rather than carry it through the first idle hours.
	debug.FreeOSMemory()
	if generated != "" {
		fmt.Fprintf(stdout, "\n%s\nNodus created the first administrator account:\n  login:    %s (or %s)\n  password: %s\nThis password is shown only this once. Sign in and change it.\n%s\n\n",
			strings.Repeat("=", 72), u.Username, u.Email, generated, strings.Repeat("=", 72))
	}
	return nil
}

// serveDebug serves Go's pprof profiles on addr (a loopback address, as
// the configuration checks) until the returned stop is called.
func serveDebug(addr string, logger *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on the debug address %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("serving pprof profiles", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// tenantQuotas reads a tenant's chatbot quota from identity.
type tenantQuotas struct{ ids *identity.Service }

func (q tenantQuotas) MaxChatbots(ctx context.Context, tenantID string) (int, error) {
	t, err := q.ids.Tenant(nodus.WithTenant(ctx, tenantID), tenantID)
	if err != nil {
		return 0, err
	}
	return t.MaxChatbots, nil
}
