package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/big"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"

	"github.com/nodus-os/nodus/internal/nodus"
)

// This file imports a LiteLLM-style config file (reference gateway.md
// §2.4): its model_list becomes the tenant's deployments, the prices in
// model_info become price overrides, and router_settings the tenant's
// routing rules. Provider keys never appear in the file: api_key names a
// vault secret handle, "vault:<handle-id>", as every provider key in Nodus
// is one. A literal key or LiteLLM's "os.environ/NAME" is refused, and
// never stored or echoed.
//
// Decoding is strict: a field Nodus does not know is an error naming its
// entry, so a LiteLLM setting Nodus lacks is never silently dropped.

// Limits of a model list.
const (
	MaxModelListBytes   = 1 << 20
	MaxModelListEntries = 1000
)

// The file as LiteLLM writes it; only these fields are accepted.
type modelListFile struct {
	ModelList      []modelEntry         `yaml:"model_list"`
	RouterSettings *routerSettingsEntry `yaml:"router_settings"`
}

type modelEntry struct {
	ModelName string        `yaml:"model_name"`
	Params    liteLLMParams `yaml:"litellm_params"`
	Info      modelInfo     `yaml:"model_info"`
}

type liteLLMParams struct {
	Model               string `yaml:"model"` // "<provider>/<upstream model>"
	APIBase             string `yaml:"api_base"`
	APIVersion          string `yaml:"api_version"`
	APIKey              string `yaml:"api_key"` // "vault:<handle-id>" or nothing
	RPM                 int64  `yaml:"rpm"`
	TPM                 int64  `yaml:"tpm"`
	MaxParallelRequests int    `yaml:"max_parallel_requests"`
	Timeout             int    `yaml:"timeout"` // seconds
	Weight              int    `yaml:"weight"`
}

type modelInfo struct {
	Mode        string     `yaml:"mode"`
	ID          string     `yaml:"id"`
	InputCost   *tokenCost `yaml:"input_cost_per_token"`
	OutputCost  *tokenCost `yaml:"output_cost_per_token"`
	CachedInput *tokenCost `yaml:"cache_read_input_token_cost"`
}

type routerSettingsEntry struct {
	RoutingStrategy string                `yaml:"routing_strategy"`
	NumRetries      *int                  `yaml:"num_retries"`
	AllowedFails    int                   `yaml:"allowed_fails"`
	CooldownTime    int                   `yaml:"cooldown_time"` // seconds
	Fallbacks       []map[string][]string `yaml:"fallbacks"`     // [{gpt-4: [gpt-3.5-turbo]}, …]
}

// tokenCost is LiteLLM's dollars per token (2.5e-06) held as micro-dollars
// per million tokens (2500000). The literal is read as an exact decimal,
// never as a float, and rounded half up to a whole micro-dollar.
type tokenCost int64

func (c *tokenCost) UnmarshalYAML(n *yaml.Node) error {
	bad := &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a cost must be a number of dollars per token from 0 to 1", n.Line)}}
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") {
		return bad
	}
	r, ok := new(big.Rat).SetString(n.Value)
	if !ok || r.Sign() < 0 {
		return bad
	}
	r.Mul(r, new(big.Rat).SetInt64(1_000_000_000_000))
	num, den := r.Num(), r.Denom()
	// round(n/d) = floor((2n + d) / 2d) for n ≥ 0
	q := new(big.Int).Quo(new(big.Int).Add(new(big.Int).Lsh(num, 1), den), new(big.Int).Lsh(den, 1))
	if !q.IsInt64() || q.Int64() > maxPriceMicros {
		return bad
	}
	*c = tokenCost(q.Int64())
	return nil
}

// ModelList is a parsed, validated model list, ready to import.
type ModelList struct {
	Deployments []ImportedDeployment
	// Prices are the files's per-model prices, by upstream model name, the
	// first name LookupPrice tries for a deployment.
	Prices map[string]Price
	// RouterSettings is nil when the file has none: the tenant's stay.
	RouterSettings *RouterSettingsInput
}

// ImportedDeployment is one model_list entry.
type ImportedDeployment struct {
	Entry string // "model_list[3] (gpt-4o)", for messages
	// ID is model_info.id: it names the deployment across imports. Without
	// one, an entry matches a deployment with the same model name,
	// provider, upstream model and base URL.
	ID    string
	Input DeploymentInput
}

// listErrors collects a model list's problems by where they are.
type listErrors struct {
	fields map[string]string
	first  string
	n      int
}

func (e *listErrors) add(where, msg string) {
	if e.n == 0 {
		e.fields, e.first = map[string]string{}, where+": "+msg
	}
	e.n++
	switch prev, ok := e.fields[where]; {
	case ok && len(prev) < 2000:
		e.fields[where] = prev + "; " + msg
	case !ok && len(e.fields) < 100:
		e.fields[where] = msg
	}
}

func (e *listErrors) err() error {
	if e.n == 0 {
		return nil
	}
	msg := "invalid model list: " + e.first
	if e.n > 1 {
		msg += fmt.Sprintf(" (and %d more)", e.n-1)
	}
	return &nodus.Error{Code: nodus.EINVALID, Message: msg, Fields: e.fields}
}

// entrySpans finds where each model_list entry starts, to say which entry
// a YAML error's line belongs to.
type entrySpans struct {
	starts []int    // the first line of each entry
	names  []string // its model_name, if any
	end    int      // the first line after the list; 0 when it runs to the end
}

func spansOf(doc *yaml.Node) entrySpans {
	var s entrySpans
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return s
	}
	top := doc.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		if top[i].Value != "model_list" || top[i+1].Kind != yaml.SequenceNode {
			continue
		}
		for _, item := range top[i+1].Content {
			name := ""
			for j := 0; item.Kind == yaml.MappingNode && j+1 < len(item.Content); j += 2 {
				if item.Content[j].Value == "model_name" {
					name = item.Content[j+1].Value
				}
			}
			s.starts, s.names = append(s.starts, item.Line), append(s.names, name)
		}
		if i+2 < len(top) {
			s.end = top[i+2].Line
		}
	}
	return s
}

// where names the entry a line is in, or the line.
func (s entrySpans) where(line int) string {
	i, _ := slices.BinarySearch(s.starts, line+1)
	if i == 0 || (s.end > 0 && line >= s.end) {
		return "line " + strconv.Itoa(line)
	}
	return entryName(i-1, s.names[i-1])
}

func entryName(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("model_list[%d]", i)
	}
	return fmt.Sprintf("model_list[%d] (%s)", i, name)
}

// addYAML files a YAML error under the entry its line is in, in words
// about the file rather than Go types.
func (e *listErrors) addYAML(s entrySpans, err error) {
	msgs := []string{err.Error()}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	for _, msg := range msgs {
		msg = strings.TrimPrefix(msg, "yaml: ")
		where := "file"
		var line int
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, after, ok := strings.Cut(rest, ": "); ok {
				if l, err := strconv.Atoi(n); err == nil {
					line, msg = l, after
					where = s.where(line)
				}
			}
		}
		if field, ok := strings.CutPrefix(msg, "field "); ok {
			if name, _, ok := strings.Cut(field, " not found in type "); ok {
				msg = "unknown field " + strconv.Quote(name)
			}
		}
		if line > 0 && !strings.HasPrefix(where, "line ") {
			msg = "line " + strconv.Itoa(line) + ": " + msg
		}
		e.add(where, msg)
	}
}

// ParseModelList reads a LiteLLM-style config file of at most
// MaxModelListBytes with at most MaxModelListEntries models. Every problem
// is reported at once, each under the entry it is in; an EINVALID error
// carries them in its Fields.
func ParseModelList(r io.Reader) (*ModelList, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxModelListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("gateway: read model list: %w", err)
	}
	if len(data) > MaxModelListBytes {
		return nil, nodus.Errorf(nodus.ETOOLARGE, "the model list is larger than %d bytes", MaxModelListBytes)
	}
	var errs listErrors
	var doc, next yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&doc); {
	case errors.Is(err, io.EOF):
		return nil, nodus.Errorf(nodus.EINVALID, "invalid model list: the file is empty")
	case err != nil:
		errs.addYAML(entrySpans{}, err)
		return nil, errs.err()
	}
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, nodus.Errorf(nodus.EINVALID, "invalid model list: the file must hold a single YAML document")
	}
	spans := spansOf(&doc)
	if len(spans.starts) > MaxModelListEntries {
		return nil, nodus.Errorf(nodus.EINVALID, "invalid model list: %d models, at most %d", len(spans.starts), MaxModelListEntries)
	}
	var f modelListFile
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(&f); err != nil {
		errs.addYAML(spans, err)
		return nil, errs.err()
	}
	if len(f.ModelList) == 0 {
		errs.add("model_list", "no models: the file needs a model_list with at least one entry")
	}

	out := &ModelList{Prices: map[string]Price{}}
	ids := map[string]string{}       // model_info.id → the entry that has it
	priceFrom := map[string]string{} // upstream model → the entry its price came from
	for i, e := range f.ModelList {
		where := entryName(i, e.ModelName)
		d, p, err := e.deployment()
		if err != nil {
			errs.add(where, err.Error())
			continue
		}
		if e.Info.ID != "" {
			if prev, ok := ids[e.Info.ID]; ok {
				errs.add(where, "model_info.id "+strconv.Quote(e.Info.ID)+" is also the id of "+prev)
				continue
			}
			ids[e.Info.ID] = where
		}
		if p != nil {
			if prev, ok := out.Prices[d.UpstreamModel]; ok && prev != *p {
				errs.add(where, "model_info: its price for "+d.UpstreamModel+" differs from the one in "+priceFrom[d.UpstreamModel])
				continue
			}
			out.Prices[d.UpstreamModel], priceFrom[d.UpstreamModel] = *p, where
		}
		out.Deployments = append(out.Deployments, ImportedDeployment{Entry: where, ID: e.Info.ID, Input: d})
	}
	if f.RouterSettings != nil {
		in, err := f.RouterSettings.input()
		if err != nil {
			errs.add("router_settings", err.Error())
		}
		out.RouterSettings = &in
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// deployment turns an entry into a deployment and its price, if it has one.
func (e modelEntry) deployment() (DeploymentInput, *Price, error) {
	p := e.Params
	prefix, upstream, ok := strings.Cut(p.Model, "/")
	if !ok || prefix == "" || upstream == "" {
		return DeploymentInput{}, nil, errors.New(`litellm_params.model: "<provider>/<model>", such as openai/gpt-4o`)
	}
	provider, compatible := liteLLMProvider(prefix)
	if provider == "" {
		return DeploymentInput{}, nil, fmt.Errorf("litellm_params.model: provider %q is not supported: use openai, azure, anthropic, "+
			"or an OpenAI-compatible server (hosted_vllm, ollama, lm_studio, groq, …) with api_base", prefix)
	}
	base := p.APIBase
	switch {
	case base == "" && prefix == "openai":
		base = "https://api.openai.com/v1"
	case base == "" && (compatible || provider == ProviderAzure):
		return DeploymentInput{}, nil, fmt.Errorf("litellm_params.api_base: required for %s", prefix)
	case prefix == "ollama" || prefix == "ollama_chat":
		// LiteLLM talks to Ollama's own API at the server's root; Nodus to
		// its OpenAI-compatible one under /v1.
		if u, err := url.Parse(base); err == nil && strings.Trim(u.Path, "/") == "" {
			base = strings.TrimRight(base, "/") + "/v1"
		}
	}
	handle, err := keyHandle(p.APIKey)
	if err != nil {
		return DeploymentInput{}, nil, fmt.Errorf("litellm_params.api_key: %w", err)
	}
	mode, ok := map[string]string{"": ModeChat, "chat": ModeChat, "embedding": ModeEmbedding,
		"audio_transcription": ModeTranscription}[e.Info.Mode]
	if !ok {
		return DeploymentInput{}, nil, fmt.Errorf("model_info.mode: %q is not supported: chat, embedding or audio_transcription", e.Info.Mode)
	}
	if len(e.Info.ID) > maxModelNameLen || strings.ContainsFunc(e.Info.ID, unicode.IsControl) {
		return DeploymentInput{}, nil, errors.New("model_info.id: at most 200 characters, no control characters")
	}
	if p.Weight < 0 {
		return DeploymentInput{}, nil, errors.New("litellm_params.weight: must not be negative")
	}
	in := DeploymentInput{ModelName: e.ModelName, Provider: provider, UpstreamModel: upstream, BaseURL: base,
		APIKeyHandle: handle, APIVersion: p.APIVersion, Mode: mode, Weight: max(p.Weight, 1), RPM: p.RPM, TPM: p.TPM,
		MaxConcurrency: p.MaxParallelRequests, TimeoutSeconds: p.Timeout}
	if err := in.validate(); err != nil {
		return DeploymentInput{}, nil, errors.New(fileField(err))
	}
	if !validModelName(e.ModelName) {
		return DeploymentInput{}, nil, errors.New("model_name: no control characters or spaces at the ends")
	}
	info := e.Info
	if info.InputCost == nil && info.OutputCost == nil && info.CachedInput == nil {
		return in, nil, nil
	}
	price := Price{}
	if info.InputCost != nil {
		price.Input = int64(*info.InputCost)
	}
	price.CachedInput = price.Input
	if info.CachedInput != nil {
		price.CachedInput = int64(*info.CachedInput)
	}
	if info.OutputCost != nil {
		price.Output = int64(*info.OutputCost)
	}
	return in, &price, nil
}

// fileField rewrites a DeploymentInput error in the file's field names.
func fileField(err error) string {
	names := map[string]string{"model_name": "model_name", "provider": "litellm_params.model",
		"upstream_model": "litellm_params.model", "base_url": "litellm_params.api_base", "mode": "model_info.mode",
		"limits": "litellm_params", "api_key_handle": "litellm_params.api_key"}
	for field, msg := range nodus.ErrorFields(err) {
		if name, ok := names[field]; ok {
			field = name
		}
		if field == "litellm_params" {
			msg = "weight, rpm, tpm, max_parallel_requests must not be negative; timeout at most 3600 seconds"
		}
		return field + ": " + msg
	}
	return nodus.ErrorMessage(err)
}

// liteLLMProvider maps a LiteLLM provider prefix onto a Nodus provider;
// compatible is true for the OpenAI-compatible servers, whose api_base
// must be given.
func liteLLMProvider(prefix string) (provider string, compatible bool) {
	switch prefix {
	case "openai":
		return ProviderOpenAI, false
	case "azure":
		return ProviderAzure, false
	case "anthropic":
		return ProviderAnthropic, false
	case "hosted_vllm", "vllm", "ollama", "ollama_chat", "lm_studio", "llamafile", "openai_like", "custom_openai",
		"groq", "together_ai", "mistral", "deepseek", "openrouter", "fireworks_ai", "xai", "perplexity", "deepinfra":
		return ProviderOpenAI, true
	}
	return "", false
}

// keyHandle reads api_key: nothing, or "vault:<handle-id>". The value is
// never part of an error: it may be the very secret that must not leak.
func keyHandle(apiKey string) (string, error) {
	const how = "provider keys are vault secret handles: store the key in the vault, create a handle for it, " +
		"and write api_key: vault:<handle-id>"
	if apiKey == "" {
		return "", nil
	}
	if strings.HasPrefix(apiKey, "os.environ/") {
		return "", errors.New("os.environ/… is not accepted; " + how)
	}
	id, ok := strings.CutPrefix(apiKey, "vault:")
	switch {
	case !ok:
		return "", errors.New("a literal key is not accepted and was not stored; " + how)
	case !nodus.ValidID(id):
		return "", errors.New("vault:<handle-id> needs the handle's id, a UUID; " + how)
	}
	return id, nil
}

// input turns LiteLLM's router_settings into Nodus's. LiteLLM's
// simple-shuffle is a weighted random pick, Nodus's weighted strategy.
func (r routerSettingsEntry) input() (RouterSettingsInput, error) {
	in := RouterSettingsInput{NumRetries: r.NumRetries, AllowedFails: r.AllowedFails, CooldownSeconds: r.CooldownTime}
	switch r.RoutingStrategy {
	case "", "simple-shuffle", StrategyWeighted:
		in.Strategy = StrategyWeighted
	case StrategyLeastBusy:
		in.Strategy = StrategyLeastBusy
	default:
		return in, fmt.Errorf("routing_strategy %q is not supported: simple-shuffle or least-busy", r.RoutingStrategy)
	}
	for i, fb := range r.Fallbacks {
		if len(fb) != 1 {
			return in, fmt.Errorf("fallbacks[%d]: one model per item, as in [{gpt-4o: [gpt-4o-mini]}]", i)
		}
		for model, targets := range fb {
			if in.Fallbacks == nil {
				in.Fallbacks = map[string][]string{}
			}
			if _, dup := in.Fallbacks[model]; dup {
				return in, fmt.Errorf("fallbacks[%d]: %s is listed twice", i, model)
			}
			in.Fallbacks[model] = targets
		}
	}
	if err := in.validate(); err != nil {
		for field, msg := range nodus.ErrorFields(err) {
			return in, errors.New(field + ": " + msg)
		}
		return in, err
	}
	return in, nil
}

// ImportOptions tune an import.
type ImportOptions struct {
	DryRun bool // report what would change; change nothing
	Prune  bool // delete the tenant's deployments the file does not list
}

// Import change actions.
const (
	ImportCreate = "create"
	ImportUpdate = "update"
	ImportDelete = "delete"
)

// ImportChange is one change an import makes, or would make.
type ImportChange struct {
	Action string   `json:"action"`       // ImportCreate, ImportUpdate or ImportDelete
	Kind   string   `json:"kind"`         // "deployment", "price" or "router_settings"
	ID     string   `json:"id,omitempty"` // the deployment's id
	Name   string   `json:"name"`         // the public model name, or the priced model
	Fields []string `json:"fields,omitempty"`
}

// ImportResult says what an import changed, or would change in a dry run.
type ImportResult struct {
	DryRun    bool           `json:"dry_run"`
	Created   int            `json:"created"`
	Updated   int            `json:"updated"`
	Deleted   int            `json:"deleted"`
	Unchanged int            `json:"unchanged"`
	Changes   []ImportChange `json:"changes"`
}

// importPlan is everything an import will write, worked out and checked
// before the first write.
type importPlan struct {
	create, update []Deployment
	before         map[string]Deployment // by id, for updates
	remove         []Deployment
	prices         []PriceOverride
	settings       *RouterSettings
	settingsBefore RouterSettings
}

// ImportModelList makes the tenant's gateway configuration what the list
// says. It is idempotent: importing the same list again changes nothing.
// Every change is checked before the first is written; the store has no
// transaction across them, so a failure while writing (the database gone)
// can leave part applied, and importing again completes it. Each change
// is audited like the same change made by hand.
func (s *Service) ImportModelList(ctx context.Context, m Manager, l *ModelList, opts ImportOptions) (*ImportResult, error) {
	if !m.Admin {
		return nil, forbidden("import a model list")
	}
	plan, res, err := s.planImport(ctx, m, l, opts)
	if err != nil || opts.DryRun {
		return res, err
	}
	// Whatever happens below, the next call reads the store again.
	defer s.invalidate(m.TenantID)
	tctx := m.ctx(ctx)
	for i := range plan.create {
		d := &plan.create[i]
		if err := s.store.CreateDeployment(tctx, *d); err != nil {
			return nil, fmt.Errorf("gateway: import %s: %w", d.ModelName, err)
		}
		if err := s.record(ctx, m.entry("gateway.deployment_create", "gateway_deployment", d.ID, deploymentChanges(nil, d))); err != nil {
			return nil, err
		}
	}
	for i := range plan.update {
		d, before := &plan.update[i], plan.before[plan.update[i].ID]
		if err := s.store.UpdateDeployment(tctx, *d); err != nil {
			return nil, fmt.Errorf("gateway: import %s: %w", d.ModelName, err)
		}
		if err := s.record(ctx, m.entry("gateway.deployment_update", "gateway_deployment", d.ID, deploymentChanges(&before, d))); err != nil {
			return nil, err
		}
	}
	for i := range plan.prices {
		if err := s.putPrice(ctx, m, &plan.prices[i]); err != nil {
			return nil, fmt.Errorf("gateway: import the price of %s: %w", plan.prices[i].Model, err)
		}
	}
	if plan.settings != nil {
		if err := s.putRouterSettings(ctx, m, plan.settingsBefore, plan.settings); err != nil {
			return nil, fmt.Errorf("gateway: import router settings: %w", err)
		}
	}
	// Deletions last: a failure above leaves the old deployments serving.
	for _, d := range plan.remove {
		if err := s.store.DeleteDeployment(tctx, d.ID); err != nil {
			return nil, fmt.Errorf("gateway: prune %s: %w", d.ModelName, err)
		}
		s.router.Forget(d.ID)
		if err := s.record(ctx, m.entry("gateway.deployment_delete", "gateway_deployment", d.ID, nil)); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// planImport matches the list against the tenant's configuration.
func (s *Service) planImport(ctx context.Context, m Manager, l *ModelList, opts ImportOptions) (*importPlan, *ImportResult, error) {
	tctx := m.ctx(ctx)
	existing, err := s.store.ListDeployments(tctx)
	if err != nil {
		return nil, nil, err
	}
	plan := &importPlan{before: map[string]Deployment{}}
	res := &ImportResult{DryRun: opts.DryRun, Changes: []ImportChange{}}
	byID := make(map[string]int, len(existing))
	for i, d := range existing {
		byID[d.ID] = i
	}
	claimed := make([]bool, len(existing))
	match := make([]int, len(l.Deployments)) // the existing deployment each entry updates, or -1
	// Entries with an id first, so matching by name cannot take their
	// deployment.
	for i, in := range l.Deployments {
		match[i] = -1
		if in.ID == "" {
			continue
		}
		id := importedID(m.TenantID, in.ID)
		if nodus.ValidID(in.ID) {
			if _, ok := byID[in.ID]; ok {
				id = in.ID // a deployment of this tenant, by its own id
			}
		}
		if j, ok := byID[id]; ok && !claimed[j] {
			match[i], claimed[j] = j, true
		}
	}
	for i, in := range l.Deployments {
		if in.ID != "" {
			continue
		}
		for j, d := range existing {
			if !claimed[j] && d.ModelName == in.Input.ModelName && d.Provider == in.Input.Provider &&
				d.UpstreamModel == in.Input.UpstreamModel && d.BaseURL == in.Input.BaseURL {
				match[i], claimed[j] = j, true
				break
			}
		}
	}

	var errs listErrors
	now := s.now().UTC()
	for i, in := range l.Deployments {
		if match[i] < 0 {
			d := Deployment{ID: nodus.NewID(), TenantID: m.TenantID, CreatedAt: now, CreatedBy: m.UserID, UpdatedAt: now, UpdatedBy: m.UserID}
			if in.ID != "" {
				d.ID = importedID(m.TenantID, in.ID)
			}
			in.Input.apply(&d)
			plan.create = append(plan.create, d)
			c := ImportChange{Action: ImportCreate, Kind: "deployment", ID: d.ID, Name: d.ModelName}
			if opts.DryRun && in.ID == "" {
				c.ID = "" // made up now, and again by the real import
			}
			res.Changes = append(res.Changes, c)
			continue
		}
		before := existing[match[i]]
		d := before
		in.Input.apply(&d)
		fields := deploymentDiff(&before, &d)
		if len(fields) == 0 {
			res.Unchanged++
			continue
		}
		// The rule of UpdateDeployment: a key does not follow a new URL.
		if d.BaseURL != before.BaseURL && d.APIKeyHandle != "" && d.APIKeyHandle == before.APIKeyHandle {
			errs.add(in.Entry, "litellm_params.api_base changes the URL of deployment "+d.ID+
				" but keeps its key handle: a new base URL needs its key entered again, with a new handle")
			continue
		}
		d.UpdatedAt, d.UpdatedBy = now, m.UserID
		plan.update = append(plan.update, d)
		plan.before[d.ID] = before
		res.Changes = append(res.Changes, ImportChange{Action: ImportUpdate, Kind: "deployment", ID: d.ID, Name: d.ModelName, Fields: fields})
	}
	if opts.Prune {
		for j, d := range existing {
			if !claimed[j] {
				plan.remove = append(plan.remove, d)
				res.Changes = append(res.Changes, ImportChange{Action: ImportDelete, Kind: "deployment", ID: d.ID, Name: d.ModelName})
			}
		}
	}
	if err := errs.err(); err != nil {
		return nil, nil, err
	}

	overrides, err := s.store.ListPriceOverrides(tctx)
	if err != nil {
		return nil, nil, err
	}
	current := make(map[string]Price, len(overrides))
	for _, o := range overrides {
		current[o.Model] = o.Price
	}
	for _, model := range slices.Sorted(maps.Keys(l.Prices)) {
		p := l.Prices[model]
		prev, ok := current[model]
		switch {
		case ok && prev == p:
			res.Unchanged++
			continue
		case ok:
			res.Changes = append(res.Changes, ImportChange{Action: ImportUpdate, Kind: "price", Name: model, Fields: priceDiff(prev, p)})
		default:
			res.Changes = append(res.Changes, ImportChange{Action: ImportCreate, Kind: "price", Name: model})
		}
		plan.prices = append(plan.prices, PriceOverride{TenantID: m.TenantID, Model: model, Price: p})
	}

	if l.RouterSettings != nil {
		before, err := s.FindRouterSettings(ctx, m)
		if err != nil {
			return nil, nil, err
		}
		in := *l.RouterSettings
		// LiteLLM's format has no fail window: the tenant's stays.
		in.FailWindowSeconds = int(before.FailWindow / time.Second)
		rs := in.settings(m.TenantID)
		if sameSettings(before, rs) {
			res.Unchanged++
		} else {
			plan.settings, plan.settingsBefore = &rs, before
			res.Changes = append(res.Changes, ImportChange{Action: ImportUpdate, Kind: "router_settings",
				Fields: slices.Sorted(maps.Keys(settingsChanges(before, rs)))})
		}
	}
	for _, c := range res.Changes {
		switch c.Action {
		case ImportCreate:
			res.Created++
		case ImportUpdate:
			res.Updated++
		case ImportDelete:
			res.Deleted++
		}
	}
	return plan, res, nil
}

// importedID is the id of the deployment a model_info.id names in a
// tenant: the same on every import, and never another tenant's.
func importedID(tenantID, id string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("nodus:gateway-deployment:"+tenantID+":"+id)).String()
}

// deploymentDiff names the settings that differ between two deployments.
func deploymentDiff(b, a *Deployment) []string {
	var out []string
	for _, f := range []struct {
		name   string
		differ bool
	}{
		{"model_name", b.ModelName != a.ModelName},
		{"provider", b.Provider != a.Provider},
		{"upstream_model", b.UpstreamModel != a.UpstreamModel},
		{"base_url", b.BaseURL != a.BaseURL},
		{"api_key_handle", b.APIKeyHandle != a.APIKeyHandle},
		{"api_version", b.APIVersion != a.APIVersion},
		{"mode", b.Mode != a.Mode},
		{"weight", b.Weight != a.Weight},
		{"rpm", b.RPM != a.RPM},
		{"tpm", b.TPM != a.TPM},
		{"max_concurrency", b.MaxConcurrency != a.MaxConcurrency},
		{"timeout_seconds", b.Timeout != a.Timeout},
		{"is_active", b.IsActive != a.IsActive},
	} {
		if f.differ {
			out = append(out, f.name)
		}
	}
	return out
}

func priceDiff(b, a Price) []string {
	var out []string
	for _, f := range []struct {
		name string
		x, y int64
	}{{"input", b.Input, a.Input}, {"cached_input", b.CachedInput, a.CachedInput}, {"output", b.Output, a.Output}} {
		if f.x != f.y {
			out = append(out, f.name)
		}
	}
	return out
}
