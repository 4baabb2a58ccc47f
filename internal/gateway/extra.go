package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// This file holds what the request types share to pass on the fields the
// gateway does not model: an OpenAI-compatible server or a provider's new
// parameter reaches the upstream as the client sent it.

// splitExtra decodes the JSON object b into typed, a pointer to a struct
// whose methods do not decode (a defined copy of the request type), and
// returns the top-level fields not named in known, verbatim; nil when there
// are none.
//
// The typed decode checks b; a second pass then reads only its top-level
// names, keeping the values of unknown ones. (Decoding b into a map of
// every field as well cost a map and a copy of each value per request.)
func splitExtra(b []byte, typed any, known []string) (map[string]json.RawMessage, error) {
	if err := jsonv1.Unmarshal(b, typed); err != nil {
		return nil, err
	}
	dec := extraDecoders.Get().(*jsontext.Decoder)
	defer extraDecoders.Put(dec)
	dec.Reset(bytes.NewReader(b), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, err // null: nothing typed, nothing extra
	}
	var extra map[string]json.RawMessage
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		var key string
		if raw := name[1 : len(name)-1]; !bytes.ContainsRune(raw, '\\') {
			if isKnown(known, raw) {
				if err := dec.SkipValue(); err != nil {
					return nil, err
				}
				continue
			}
			key = string(raw)
		} else if key, err = unquote(name); err != nil {
			return nil, err
		} else if slices.Contains(known, key) {
			if err := dec.SkipValue(); err != nil {
				return nil, err
			}
			continue
		}
		v, err := dec.ReadValue()
		if err != nil {
			return nil, err
		}
		if extra == nil {
			extra = make(map[string]json.RawMessage)
		}
		extra[key] = bytes.Clone(v)
	}
	return extra, nil
}

// isKnown reports whether the unescaped name raw is one of known, without
// making a string of it.
func isKnown(known []string, raw []byte) bool {
	for _, k := range known {
		if string(raw) == k {
			return true
		}
	}
	return false
}

// extraDecoders keeps splitExtra's decoders (and their buffers) between
// requests.
var extraDecoders = sync.Pool{New: func() any { return new(jsontext.Decoder) }}

// unquote is a JSON string's value.
func unquote(v jsontext.Value) (string, error) {
	var s string
	err := jsonv1.Unmarshal(v, &s)
	return s, err
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
