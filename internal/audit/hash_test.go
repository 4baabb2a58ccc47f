package audit

import (
	"testing"
	"time"
)

// TestCanonicalEncodingIsPinned pins the canonical encoding byte for byte.
// Every stored hash depends on it: if this test fails, existing chains no
// longer verify. Change the encoding only by adding a new version.
func TestCanonicalEncodingIsPinned(t *testing.T) {
	e := Entry{
		ID:         "0190f5a8-7a1e-7c3b-9d2e-4f5a6b7c8d9e",
		Seq:        7,
		Time:       time.Date(2026, 11, 23, 10, 11, 12, 123456789, time.FixedZone("CET", 3600)),
		TenantID:   "t1",
		ActorID:    "u1",
		ActorKind:  ActorUser,
		Action:     "user.update",
		TargetType: "user",
		TargetID:   "u2",
		Address:    "192.0.2.1",
		UserAgent:  "curl/8 <&>",
		Changes: map[string]Change{
			"role":  {Before: "user", After: "org_admin"},
			"email": {After: map[string]any{"z": 1, "a": []any{"é", true, nil}}},
		},
		PrevHash: GenesisHash,
		Hash:     "ignored",
	}
	want := `{"v":1,"seq":7,"id":"0190f5a8-7a1e-7c3b-9d2e-4f5a6b7c8d9e","time":"2026-11-23T09:11:12.123456Z",` +
		`"tenant_id":"t1","actor_id":"u1","actor_kind":"user","action":"user.update","target_type":"user",` +
		`"target_id":"u2","address":"192.0.2.1","user_agent":"curl/8 <&>",` +
		`"changes":{"email":{"after":{"a":["é",true,null],"z":1}},"role":{"before":"user","after":"org_admin"}},` +
		`"prev_hash":"` + GenesisHash + `"}`
	got, err := e.canonical()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("canonical encoding\n got %s\nwant %s", got, want)
	}
	const wantHash = "2b8ee137dc533abb976858eeb5747a894d2cdf8bd0bcbf473c7838189b846edd" // sha256sum of want
	if h := e.ComputeHash(); h != wantHash {
		t.Fatalf("ComputeHash = %s, want %s", h, wantHash)
	}
}
