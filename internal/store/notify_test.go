package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notify"
	"github.com/nodus-os/nodus/internal/store"
)

// publish writes an event of s with a notification for each user, and
// returns the notifications.
func publish(t *testing.T, db *store.DB, s tenantScope, key string, at time.Time, users ...string) (bool, []notify.Notification) {
	t.Helper()
	ev := notify.Event{ID: nodus.NewID(), TenantID: s.id, Kind: notify.KindBudgetExhausted, DedupeKey: key,
		Title: "Budget exhausted", Body: "spent", Link: "/gateway/budgets", Data: map[string]any{"percent": 100}, CreatedAt: at}
	var notes []notify.Notification
	for _, u := range users {
		notes = append(notes, notify.Notification{ID: nodus.NewID(), TenantID: s.id, UserID: u, EventID: ev.ID, Kind: ev.Kind,
			Title: ev.Title, Body: ev.Body, Link: ev.Link, CreatedAt: at})
	}
	ok, err := db.PublishNotifyEvent(s.ctx, ev, notes, nil, nil)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ok, notes
}

func TestNotifications(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		t0 := nodus.SystemClock{}.Now()
		ok, notes := publish(t, db, a, "budget:1:100", t0, "alice", "bob")
		if !ok {
			t.Fatal("first publish not published")
		}
		// The same key again publishes nothing; in another tenant it is
		// another event.
		if ok, _ := publish(t, db, a, "budget:1:100", t0, "alice"); ok {
			t.Error("a duplicate key was published again")
		}
		if ok, _ := publish(t, db, b, "budget:1:100", t0, "alice"); !ok {
			t.Error("B's event with A's key was not published")
		}
		// Without a key, never deduplicated.
		publish(t, db, a, "", t0.Add(time.Second), "alice")
		publish(t, db, a, "", t0.Add(2*time.Second), "alice")

		ev, err := db.FindNotifyEvent(a.ctx, notes[0].EventID)
		if err != nil || ev.Kind != notify.KindBudgetExhausted || ev.Data["percent"] != float64(100) || !ev.CreatedAt.Equal(t0) {
			t.Errorf("FindNotifyEvent = %+v, %v", ev, err)
		}
		if _, err := db.FindNotifyEvent(b.ctx, notes[0].EventID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's event: %v", err)
		}

		// alice has three, newest first, paged two at a time.
		page, next, err := db.ListNotifications(a.ctx, "alice", notify.ListFilter{Limit: 2})
		if err != nil || len(page) != 2 || next == "" || page[0].ID < page[1].ID {
			t.Fatalf("page 1 = %d %q %v", len(page), next, err)
		}
		rest, next2, err := db.ListNotifications(a.ctx, "alice", notify.ListFilter{Limit: 2, Cursor: next})
		if err != nil || len(rest) != 1 || next2 != "" || rest[0].ID != notes[0].ID {
			t.Fatalf("page 2 = %+v %q %v", rest, next2, err)
		}
		if n, err := db.CountUnreadNotifications(a.ctx, "alice"); n != 3 || err != nil {
			t.Errorf("alice unread = %d, %v", n, err)
		}
		// bob cannot mark alice's, nor B's org anything of A's.
		if err := db.MarkNotificationRead(a.ctx, "bob", notes[0].ID, t0); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("bob marks alice's: %v", err)
		}
		if err := db.MarkNotificationRead(b.ctx, "alice", notes[0].ID, t0); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B marks A's: %v", err)
		}
		if err := db.MarkNotificationRead(a.ctx, "alice", notes[0].ID, t0); err != nil {
			t.Fatal(err)
		}
		unread, _, err := db.ListNotifications(a.ctx, "alice", notify.ListFilter{UnreadOnly: true})
		if err != nil || len(unread) != 2 {
			t.Errorf("unread after one read = %d, %v", len(unread), err)
		}
		if n, err := db.MarkAllNotificationsRead(a.ctx, "alice", t0); n != 2 || err != nil {
			t.Errorf("read all = %d, %v", n, err)
		}
		if n, _ := db.CountUnreadNotifications(a.ctx, "alice"); n != 0 {
			t.Errorf("alice unread after read all = %d", n)
		}
		if n, _ := db.CountUnreadNotifications(a.ctx, "bob"); n != 1 {
			t.Errorf("bob's unread changed with alice's: %d", n)
		}
		if n, _ := db.CountUnreadNotifications(b.ctx, "alice"); n != 1 {
			t.Errorf("B's alice changed with A's: %d", n)
		}
		if _, err := db.FindNotification(b.ctx, notes[0].ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's notification: %v", err)
		}
		if _, _, err := db.ListNotifications(context.Background(), "alice", notify.ListFilter{}); err != nodus.ErrNoScope {
			t.Errorf("list without scope: %v", err)
		}
	})
}

func TestNotificationPrefs(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		t0 := nodus.SystemClock{}.Now()
		if err := db.SetNotificationPrefs(a.ctx, "alice", map[notify.Kind]bool{notify.KindBudgetExhausted: true,
			notify.KindDocumentFailed: false}, t0); err != nil {
			t.Fatal(err)
		}
		if err := db.SetNotificationPrefs(a.ctx, "bob", map[notify.Kind]bool{notify.KindBudgetExhausted: true}, t0); err != nil {
			t.Fatal(err)
		}
		// Changing one kind keeps the others.
		if err := db.SetNotificationPrefs(a.ctx, "bob", map[notify.Kind]bool{notify.KindBudgetExhausted: false,
			notify.KindSecretRotated: true}, t0); err != nil {
			t.Fatal(err)
		}
		got, err := db.NotificationPrefs(a.ctx, "bob")
		if err != nil || got[notify.KindBudgetExhausted] || !got[notify.KindSecretRotated] || len(got) != 2 {
			t.Errorf("bob's prefs = %v, %v", got, err)
		}
		in, err := db.EmailOptIns(a.ctx, notify.KindBudgetExhausted, []string{"alice", "bob", "carol"})
		if err != nil || len(in) != 1 || !in["alice"] {
			t.Errorf("opt-ins = %v, %v", in, err)
		}
		if in, err := db.EmailOptIns(b.ctx, notify.KindBudgetExhausted, []string{"alice"}); err != nil || len(in) != 0 {
			t.Errorf("B sees A's opt-ins: %v, %v", in, err)
		}
	})
}

func TestWebhooks(t *testing.T) {
	runKnowledge(t, func(t *testing.T, db *store.DB, a, b tenantScope) {
		t0 := nodus.SystemClock{}.Now()
		w := notify.Webhook{ID: nodus.NewID(), TenantID: a.id, URL: "https://hooks.example.test/a", SealedSecret: []byte{1, 2, 3},
			Kinds: []notify.Kind{notify.KindBudgetExhausted}, Active: true, CreatedBy: "alice", CreatedAt: t0}
		if err := db.CreateWebhook(a.ctx, w, 2); err != nil {
			t.Fatal(err)
		}
		w2 := w
		w2.ID = nodus.NewID()
		if err := db.CreateWebhook(a.ctx, w2, 2); err != nil {
			t.Fatal(err)
		}
		w3 := w
		w3.ID = nodus.NewID()
		if err := db.CreateWebhook(a.ctx, w3, 2); nodus.ErrorCode(err) != nodus.ECONFLICT {
			t.Errorf("a third webhook past the limit: %v", err)
		}
		got, err := db.FindWebhook(a.ctx, w.ID)
		if err != nil || got.URL != w.URL || string(got.SealedSecret) != "\x01\x02\x03" || !got.Subscribes(notify.KindBudgetExhausted) ||
			got.Subscribes(notify.KindDocumentFailed) || !got.CreatedAt.Equal(t0) {
			t.Errorf("FindWebhook = %+v, %v", got, err)
		}
		if _, err := db.FindWebhook(b.ctx, w.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B finds A's webhook: %v", err)
		}
		if list, err := db.ListWebhooks(b.ctx); err != nil || len(list) != 0 {
			t.Errorf("B lists %d webhooks, %v", len(list), err)
		}
		if err := db.DeleteWebhook(b.ctx, w.ID); nodus.ErrorCode(err) != nodus.ENOTFOUND {
			t.Errorf("B deletes A's webhook: %v", err)
		}

		// The log keeps the newest keep attempts.
		for i := 1; i <= 5; i++ {
			d := notify.Delivery{ID: nodus.NewID(), TenantID: a.id, WebhookID: w.ID, EventID: nodus.NewID(), Kind: notify.KindBudgetExhausted,
				Attempt: i, Status: notify.DeliveryFailed, ResponseCode: 500, Error: fmt.Sprintf("attempt %d", i), DurationMS: 3, CreatedAt: t0}
			if err := db.AddWebhookDelivery(a.ctx, d, 3); err != nil {
				t.Fatal(err)
			}
		}
		ds, err := db.ListWebhookDeliveries(a.ctx, w.ID, 10)
		if err != nil || len(ds) != 3 || ds[0].Attempt != 5 || ds[2].Attempt != 3 || ds[0].ResponseCode != 500 || ds[0].Error != "attempt 5" {
			t.Fatalf("deliveries = %+v, %v", ds, err)
		}
		if ds, err := db.ListWebhookDeliveries(b.ctx, w.ID, 10); err != nil || len(ds) != 0 {
			t.Errorf("B lists A's deliveries: %d, %v", len(ds), err)
		}
		if err := db.DeleteWebhook(a.ctx, w.ID); err != nil {
			t.Fatal(err)
		}
		if ds, _ := db.ListWebhookDeliveries(a.ctx, w.ID, 10); len(ds) != 0 {
			t.Errorf("a deleted webhook's log is kept: %d", len(ds))
		}

		// Purging A leaves B alone.
		publish(t, db, b, "", t0, "bob")
		if err := db.DeleteNotifyTenant(a.ctx); err != nil {
			t.Fatal(err)
		}
		if list, _ := db.ListWebhooks(a.ctx); len(list) != 0 {
			t.Errorf("A's webhooks survive the purge: %d", len(list))
		}
		if n, _ := db.CountUnreadNotifications(b.ctx, "bob"); n != 1 {
			t.Errorf("B's notifications after A's purge: %d", n)
		}
	})
}
