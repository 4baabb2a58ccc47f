package memory_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nodus-os/nodus/internal/memory"
)

func TestSalientSentences(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"My favourite colour is teal.", []string{"My favourite colour is teal."}},
		{"What's the weather?", nil},
		{"I'm a nurse and I work nights. Can you help me plan my week?", []string{"I'm a nurse and I work nights."}},
		{"I am allergic to peanuts!", []string{"I am allergic to peanuts!"}},
		{"i live in Lisbon", []string{"i live in Lisbon"}},
		{"I like jazz; I love Coltrane.", []string{"I like jazz;", "I love Coltrane."}},
		{"I prefer short answers.", []string{"I prefer short answers."}},
		{"I have two cats.\nI use Linux at home.", []string{"I have two cats.", "I use Linux at home."}},
		{"I’m vegetarian.", []string{"I’m vegetarian."}},
		{"Call me Sam.", []string{"Call me Sam."}},
		{"Remember that my wife's birthday is on May 3.", []string{"Remember that my wife's birthday is on May 3."}},
		{"By the way, my dog is called Rex.", []string{"By the way, my dog is called Rex."}},
		{"Also, I prefer   tea   to coffee.", []string{"Also, I prefer tea to coffee."}},
		{"Do I like jazz?", nil},
		{"My favourite colour?", nil},
		{"I'm sorry, that was wrong.", nil},
		{"I'm not sure about that.", nil},
		{"I'm looking for the refund policy.", nil},
		{"I have a question about billing.", nil},
		{"My question is simple.", nil},
		{"The weather is nice. Thanks!", nil},
		{"You are great.", nil},
		{"Hello there.", nil},
		{"I think so.", nil},
		{"Mine.", nil},
		{"My " + strings.Repeat("very ", 60) + "long sentence.", nil}, // over 300 characters
		{"My cat is Tom. my cat is tom", []string{"My cat is Tom."}},  // one memory
		{"Version 1.2 is what I use. I use v1.2 daily.", []string{"I use v1.2 daily."}},
	} {
		if got := memory.SalientSentences(tc.text); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SalientSentences(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestHash(t *testing.T) {
	same := []string{"My favourite colour is teal.", "my  favourite colour is TEAL", " My favourite colour is teal! "}
	for _, s := range same[1:] {
		if memory.Hash(s) != memory.Hash(same[0]) {
			t.Errorf("Hash(%q) differs from Hash(%q)", s, same[0])
		}
	}
	if memory.Hash("I’m here") != memory.Hash("I'm here") {
		t.Error("apostrophes not folded")
	}
	if memory.Hash("My favourite colour is navy.") == memory.Hash(same[0]) {
		t.Error("different texts hash the same")
	}
	if h := memory.Hash("x"); len(h) != 64 {
		t.Errorf("Hash = %q, want 64 hex digits", h)
	}
}
