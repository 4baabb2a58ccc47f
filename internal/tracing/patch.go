package tracing

import (
	"encoding/json"
	"maps"
	"time"
)

// This file holds the patches ingestion applies: a field left nil was not
// sent and keeps its stored value. The store reads the row under a lock,
// applies the patch and writes the row back, so a merge is the same on
// both engines and the rules live here, not in SQL.

// TracePatch is a trace-create event's body.
type TracePatch struct {
	ID          string
	Timestamp   *time.Time
	Name        *string
	UserID      *string
	SessionID   *string
	Release     *string
	Version     *string
	Environment *string
	Tags        []string // nil: not sent
	Public      *bool
	Input       json.RawMessage
	Output      json.RawMessage
	Metadata    json.RawMessage
}

// Apply merges the sent fields into t.
func (p *TracePatch) Apply(t *Trace) {
	setTime(&t.Timestamp, p.Timestamp)
	set(&t.Name, p.Name)
	set(&t.UserID, p.UserID)
	set(&t.SessionID, p.SessionID)
	set(&t.Release, p.Release)
	set(&t.Version, p.Version)
	set(&t.Environment, p.Environment)
	if p.Tags != nil {
		t.Tags = p.Tags
		if len(t.Tags) == 0 {
			t.Tags = nil
		}
	}
	set(&t.Public, p.Public)
	setRaw(&t.Input, p.Input)
	setRaw(&t.Output, p.Output)
	setRaw(&t.Metadata, p.Metadata)
}

// ObservationPatch is the body of a span, generation, event or
// observation event.
type ObservationPatch struct {
	ID      string
	TraceID string // always sent: the row needs it
	// Type is set by the create events (span-create is a SPAN, …) and by
	// observation-* events that name one; NewType is the type of a row an
	// update creates.
	Type                string
	NewType             string
	ParentObservationID *string
	Name                *string
	StartTime           *time.Time
	EndTime             *time.Time
	CompletionStartTime *time.Time
	Input               json.RawMessage
	Output              json.RawMessage
	Metadata            json.RawMessage
	Level               *string
	StatusMessage       *string
	Version             *string
	Environment         *string
	Model               *string
	ModelParameters     json.RawMessage
	UsageDetails        map[string]int64 // nil: not sent
	CostDetails         map[string]float64
	PromptName          *string
	PromptVersion       *int

	// inferCost, when set, prices the merged observation when it has
	// usage but no cost (see cost.go); only a patch that sent usage or a
	// model runs it.
	inferCost func(*Observation)
}

// Apply merges the sent fields into o.
func (p *ObservationPatch) Apply(o *Observation) {
	o.TraceID = p.TraceID
	if p.Type != "" {
		o.Type = p.Type
	}
	set(&o.ParentObservationID, p.ParentObservationID)
	set(&o.Name, p.Name)
	setTime(&o.StartTime, p.StartTime)
	if p.EndTime != nil {
		o.EndTime = p.EndTime
	}
	if p.CompletionStartTime != nil {
		o.CompletionStartTime = p.CompletionStartTime
	}
	setRaw(&o.Input, p.Input)
	setRaw(&o.Output, p.Output)
	setRaw(&o.Metadata, p.Metadata)
	set(&o.Level, p.Level)
	set(&o.StatusMessage, p.StatusMessage)
	set(&o.Version, p.Version)
	set(&o.Environment, p.Environment)
	set(&o.Model, p.Model)
	setRaw(&o.ModelParameters, p.ModelParameters)
	if p.UsageDetails != nil {
		o.UsageDetails = maps.Clone(p.UsageDetails)
	}
	if p.CostDetails != nil {
		o.CostDetails = maps.Clone(p.CostDetails)
	}
	set(&o.PromptName, p.PromptName)
	set(&o.PromptVersion, p.PromptVersion)
	if p.inferCost != nil && p.CostDetails == nil && (p.UsageDetails != nil || p.Model != nil) {
		p.inferCost(o)
	}
}

// ScorePatch is a score-create event's body, or a score a member makes.
type ScorePatch struct {
	ID            string
	TraceID       string
	ObservationID *string
	Name          *string
	Value         *float64
	StringValue   *string
	DataType      *string
	Comment       *string
	Source        string // of a new score
	Timestamp     *time.Time
}

// Apply merges the sent fields into s.
func (p *ScorePatch) Apply(s *Score) {
	s.TraceID = p.TraceID
	set(&s.ObservationID, p.ObservationID)
	set(&s.Name, p.Name)
	if p.Value != nil || p.StringValue != nil {
		// A value replaces the other kind of value.
		s.Value, s.StringValue = p.Value, ""
		if p.StringValue != nil {
			s.StringValue = *p.StringValue
		}
	}
	set(&s.DataType, p.DataType)
	set(&s.Comment, p.Comment)
	setTime(&s.Timestamp, p.Timestamp)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func setTime(dst *time.Time, v *time.Time) {
	if v != nil {
		*dst = v.UTC()
	}
}

func setRaw(dst *json.RawMessage, v json.RawMessage) {
	if v != nil {
		*dst = v
	}
}
