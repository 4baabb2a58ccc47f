package httpapi

import (
	"net/http"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/notify"
)

// Notifications are the caller's own: the tenant and user come from the
// credentials, never from the request. A tenant_id in the query is only
// checked (another tenant's is not found), as on every route.

// notifyAnswer runs fn with the caller's tenant and user id.
func (s *Server) notifyAnswer(status int, fn func(r *http.Request, tenantID, userID string) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		if s.deps.Notify == nil {
			return nil, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "notifications are not available"}
		}
		ctx, err := narrowScope(r)
		if err != nil {
			return nil, err
		}
		u := callerFrom(ctx).principal.User
		return fn(r.WithContext(ctx), u.TenantID, u.ID)
	})
}

func (s *Server) handleListNotifications() http.Handler {
	type response struct {
		Notifications []notify.Notification `json:"notifications"`
		NextCursor    string                `json:"next_cursor,omitempty"`
	}
	return s.notifyAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		f := notify.ListFilter{UnreadOnly: r.URL.Query().Get("unread") == "true", Limit: limit, Cursor: cursor}
		list, next, err := s.deps.Notify.ListNotifications(r.Context(), tenantID, userID, f)
		if err != nil {
			return nil, err
		}
		return response{Notifications: list, NextCursor: next}, nil
	})
}

func (s *Server) handleCountNotifications() http.Handler {
	return s.notifyAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		n, err := s.deps.Notify.UnreadCount(r.Context(), tenantID, userID)
		if err != nil {
			return nil, err
		}
		return map[string]int{"unread": n}, nil
	})
}

func (s *Server) handleReadNotification() http.Handler {
	return s.notifyAnswer(http.StatusNoContent, func(r *http.Request, tenantID, userID string) (any, error) {
		return nil, s.deps.Notify.MarkRead(r.Context(), tenantID, userID, r.PathValue("id"))
	})
}

func (s *Server) handleReadAllNotifications() http.Handler {
	return s.notifyAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		n, err := s.deps.Notify.MarkAllRead(r.Context(), tenantID, userID)
		if err != nil {
			return nil, err
		}
		return map[string]int{"marked": n}, nil
	})
}

type notificationPrefs struct {
	Email map[notify.Kind]bool `json:"email"`
}

func (s *Server) handleGetNotificationPrefs() http.Handler {
	return s.notifyAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		p, err := s.deps.Notify.Preferences(r.Context(), tenantID, userID)
		if err != nil {
			return nil, err
		}
		return notificationPrefs{Email: p}, nil
	})
}

func (s *Server) handlePutNotificationPrefs() http.Handler {
	return s.notifyAnswer(http.StatusOK, func(r *http.Request, tenantID, userID string) (any, error) {
		var in notificationPrefs
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		p, err := s.deps.Notify.SetPreferences(r.Context(), tenantID, userID, in.Email)
		if err != nil {
			return nil, err
		}
		return notificationPrefs{Email: p}, nil
	})
}

// Webhooks belong to the tenant and are managed by its org_admins (or a
// super_admin naming the tenant with ?tenant_id=).

// webhookAnswer runs fn with the tenant the request is about.
func (s *Server) webhookAnswer(status int, fn func(r *http.Request, tenantID string) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		if s.deps.Notify == nil {
			return nil, &nodus.Error{Code: nodus.EUNAVAILABLE, Message: "webhooks are not available"}
		}
		ctx, tenantID, err := s.egressTenant(r)
		if err != nil {
			return nil, err
		}
		return fn(r.WithContext(ctx), tenantID)
	})
}

func (s *Server) handleListWebhooks() http.Handler {
	return s.webhookAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		list, err := s.deps.Notify.ListWebhooks(r.Context(), tenantID)
		if err != nil {
			return nil, err
		}
		return map[string]any{"webhooks": list}, nil
	})
}

// handleCreateWebhook answers the webhook with its signing secret, which
// no later request shows.
func (s *Server) handleCreateWebhook() http.Handler {
	return s.webhookAnswer(http.StatusCreated, func(r *http.Request, tenantID string) (any, error) {
		var in notify.WebhookInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		w, secret, err := s.deps.Notify.CreateWebhook(r.Context(), egressActor(r), tenantID, in)
		if err != nil {
			return nil, err
		}
		return map[string]any{"webhook": w, "secret": secret}, nil
	})
}

func (s *Server) handleDeleteWebhook() http.Handler {
	return s.webhookAnswer(http.StatusNoContent, func(r *http.Request, tenantID string) (any, error) {
		return nil, s.deps.Notify.DeleteWebhook(r.Context(), egressActor(r), tenantID, r.PathValue("id"))
	})
}

func (s *Server) handleListWebhookDeliveries() http.Handler {
	return s.webhookAnswer(http.StatusOK, func(r *http.Request, tenantID string) (any, error) {
		limit, _, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		list, err := s.deps.Notify.ListDeliveries(r.Context(), tenantID, r.PathValue("id"), limit)
		if err != nil {
			return nil, err
		}
		return map[string]any{"deliveries": list}, nil
	})
}
