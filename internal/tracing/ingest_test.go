package tracing

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCheckJSON(t *testing.T) {
	var wide strings.Builder
	wide.WriteString("{")
	for i := range MaxObjectKeys + 1 {
		if i > 0 {
			wide.WriteString(",")
		}
		fmt.Fprintf(&wide, `"k%d":{"x":[1,"a,b"]}`, i)
	}
	wide.WriteString("}")
	tests := []struct {
		name, in, err string
	}{
		{"plain", `{"a":[1,{"b":"c\"}"}],"d":{}}`, ""},
		{"keys at the limit", "{" + strings.Repeat(`"k":1,`, MaxObjectKeys-1) + `"k":1}`, ""},
		{"too many keys", wide.String(), "more than 10000 keys"},
		{"nested keys count per object", `{"a":{"b":1,"c":2},"d":3}`, ""},
		{"depth at the limit", strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), ""},
		{"too deep", strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1), "deeper than 64"},
		{"long string", `{"a":"` + strings.Repeat("x", MaxStringBytes+1) + `"}`, "longer than"},
		{"invalid UTF-8", "{\"a\":\"\xff\"}", "UTF-8"},
	}
	for _, tt := range tests {
		err := CheckJSON([]byte(tt.in))
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.err)
		}
	}
	// Memory stays bounded: the stack only, however wide the object.
	in := []byte(wide.String())
	if n := testing.AllocsPerRun(5, func() { _ = CheckJSON(in) }); n > 8 {
		t.Errorf("CheckJSON of %d keys allocates %v times", MaxObjectKeys+1, n)
	}
}

func TestDecodeEvent(t *testing.T) {
	now := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name, in, id, err string
	}{
		{"trace", `{"id":"e1","type":"trace-create","body":{"id":"t1","name":"n","input":null}}`, "e1", ""},
		{"observation with type", `{"id":"e2","type":"observation-create","body":{"id":"o","traceId":"t","type":"TOOL"}}`, "e2", ""},
		{"bad observation type", `{"id":"e3","type":"observation-create","body":{"id":"o","traceId":"t","type":"WIDGET"}}`, "e3", "body.type"},
		{"no body id", `{"id":"e4","type":"span-create","body":{"traceId":"t"}}`, "e4", "body.id is required"},
		{"no trace id", `{"id":"e5","type":"span-create","body":{"id":"o"}}`, "e5", "body.traceId"},
		{"bad field type", `{"id":"e6","type":"trace-create","body":{"id":"t","tags":"x"}}`, "e6", "field tags"},
		{"bad time", `{"id":"e7","type":"span-create","body":{"id":"o","traceId":"t","startTime":"yesterday"}}`, "e7", "ISO 8601"},
		{"bad level", `{"id":"e8","type":"span-create","body":{"id":"o","traceId":"t","level":"LOUD"}}`, "e8", "level"},
		{"bad environment", `{"id":"e9","type":"trace-create","body":{"id":"t","environment":"langfuse-x"}}`, "e9", "environment"},
		{"unknown type", `{"id":"e10","type":"dataset-create","body":{}}`, "e10", "unknown event type"},
		{"no envelope id", `{"type":"trace-create","body":{"id":"t"}}`, "", "id is required"},
		{"string score", `{"id":"e11","type":"score-create","body":{"traceId":"t","name":"q","value":"good"}}`, "e11", ""},
		{"boolean score of 2", `{"id":"e12","type":"score-create","body":{"traceId":"t","name":"q","value":2,"dataType":"BOOLEAN"}}`, "e12", "0 or 1"},
	}
	for _, tt := range tests {
		id, ev, err := decodeEvent(json.RawMessage(tt.in), now)
		if id != tt.id || (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: id %q, err %v; want %q, %q", tt.name, id, err, tt.id, tt.err)
			continue
		}
		if tt.name == "trace" && (ev.Trace == nil || ev.Trace.Input != nil || *ev.Trace.Name != "n" || !ev.Timestamp.Equal(now)) {
			t.Errorf("trace event = %+v", ev.Trace)
		}
		if tt.name == "string score" && (ev.Score.ID != "e11" || *ev.Score.DataType != DataCategorical) {
			t.Errorf("score event = %+v", ev.Score)
		}
	}
	// Legacy usage fills usageDetails when those are absent.
	_, ev, err := decodeEvent(json.RawMessage(`{"id":"e","type":"generation-create","body":{"id":"g","traceId":"t",
		"usage":{"promptTokens":4,"completionTokens":2,"totalCost":0.5}}}`), now)
	if err != nil || ev.Observation.UsageDetails["input"] != 4 || ev.Observation.UsageDetails["output"] != 2 ||
		ev.Observation.CostDetails["total"] != 0.5 {
		t.Errorf("legacy usage: %+v, %v", ev.Observation, err)
	}
}

func TestTree(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	o := func(id, parent string, sec int) Observation {
		return Observation{ID: id, ParentObservationID: parent, StartTime: t0.Add(time.Duration(sec) * time.Second)}
	}
	top := Tree([]Observation{o("gen", "span", 2), o("span", "", 1), o("early", "span", 1), o("orphan", "gone", 0),
		o("x", "y", 5), o("y", "x", 6)})
	var render func([]*ObservationNode) string
	render = func(ns []*ObservationNode) string {
		var parts []string
		for _, n := range ns {
			s := n.ID
			if len(n.Children) > 0 {
				s += "(" + render(n.Children) + ")"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " ")
	}
	if got := render(top); got != "orphan span(early gen) x y" {
		t.Errorf("tree = %s", got)
	}
}
