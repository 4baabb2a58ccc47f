package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	jsonv1 "github.com/go-json-experiment/json/v1"
)

// This file holds what the request types share to pass on the fields the
// gateway does not model: an OpenAI-compatible server or a provider's new
// parameter reaches the upstream as the client sent it.

// splitExtra decodes the JSON object b into typed, a pointer to a struct
// whose methods do not decode (a defined copy of the request type), and
// returns the top-level fields not named in known, verbatim; nil when there
// are none.
func splitExtra(b []byte, typed any, known []string) (map[string]json.RawMessage, error) {
	var all map[string]json.RawMessage
	if err := jsonv1.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	if err := jsonv1.Unmarshal(b, typed); err != nil {
		return nil, err
	}
	for _, k := range known {
		delete(all, k)
	}
	if len(all) == 0 {
		return nil, nil
	}
	return all, nil
}

// joinExtra appends extra's fields to the JSON object typed, in key order,
// skipping the names in known: a typed field wins over an extra one.
func joinExtra(typed []byte, extra map[string]json.RawMessage, known []string) ([]byte, error) {
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !slices.Contains(known, k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return typed, nil
	}
	sort.Strings(keys)
	var buf bytes.Buffer
	buf.Write(typed[:len(typed)-1]) // drop the closing brace
	empty := bytes.Equal(bytes.TrimSpace(typed), []byte("{}"))
	for i, k := range keys {
		v := extra[k]
		if !json.Valid(v) {
			return nil, fmt.Errorf("gateway: extra field %q is not valid JSON", k)
		}
		name, _ := jsonv1.Marshal(k)
		if i > 0 || !empty {
			buf.WriteByte(',')
		}
		buf.Write(name)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// upstreamOverrides returns the paths of extra's fields, searched
// recursively, that try to choose the upstream, prefixed with prefix.
func upstreamOverrides(prefix string, extra map[string]json.RawMessage, found *[]string) {
	for k, v := range extra {
		findUpstreamFields(prefix+k, v, found)
	}
}
