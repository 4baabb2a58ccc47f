package store

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/gateway"
	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/usage"
)

// This file holds the usage metrics' SQL: the rollup's reads of a day's
// activity in the main database (chat turns, conversations, documents) and
// in the gateway's (daily rollups, spend log rows by request id), and the
// usage_daily table it replaces a day of and the API reads.

// UsageActivity implements usage.Store: the assistant messages written in
// [from, turnsTo) with their conversation's chatbot and user and the model
// and gateway request id from their metadata, and the conversations
// started and documents completed in [from, to), of the tenants in scope.
func (db *DB) UsageActivity(ctx context.Context, from, to, turnsTo time.Time) (usage.Activity, error) {
	var act usage.Activity
	mcond, margs, err := scopeCond(ctx, "m.tenant_id")
	if err != nil {
		return act, err
	}
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return act, err
	}
	err = db.Read(ctx, func(tx *Tx) error {
		act = usage.Activity{}
		rows, err := tx.Query(ctx, `SELECT m.tenant_id, c.chatbot_id, c.user_id, m.metadata, m.created_at
			FROM messages m JOIN conversations c ON c.id = m.conversation_id
			WHERE m.created_at >= ? AND m.created_at < ? AND m.role = 'assistant' AND `+mcond,
			append([]any{from.UTC(), turnsTo.UTC()}, margs...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t usage.Turn
			var meta string
			if err := rows.Scan(&t.TenantID, &t.ChatbotID, &t.UserID, &meta, &t.At); err != nil {
				return err
			}
			var md struct {
				Model     string `json:"model"`
				RequestID string `json:"request_id"`
			}
			// A message whose metadata does not parse still counts as a
			// turn, of no model.
			_ = json.Unmarshal([]byte(meta), &md)
			t.Model, t.RequestID = md.Model, md.RequestID
			act.Turns = append(act.Turns, t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		crows, err := tx.Query(ctx, `SELECT tenant_id, chatbot_id, user_id, COUNT(*) FROM conversations
			WHERE created_at >= ? AND created_at < ? AND `+cond+` GROUP BY tenant_id, chatbot_id, user_id`,
			append([]any{from.UTC(), to.UTC()}, args...)...)
		if err != nil {
			return err
		}
		defer crows.Close()
		for crows.Next() {
			var r usage.Row
			if err := crows.Scan(&r.TenantID, &r.ChatbotID, &r.UserID, &r.Conversations); err != nil {
				return err
			}
			act.Conversations = append(act.Conversations, r)
		}
		if err := crows.Err(); err != nil {
			return err
		}
		crows.Close()
		drows, err := tx.Query(ctx, `SELECT tenant_id, uploaded_by, COUNT(*) FROM documents
			WHERE processed_at >= ? AND processed_at < ? AND status = 'completed' AND `+cond+` GROUP BY tenant_id, uploaded_by`,
			append([]any{from.UTC(), to.UTC()}, args...)...)
		if err != nil {
			return err
		}
		defer drows.Close()
		for drows.Next() {
			var r usage.Row
			if err := drows.Scan(&r.TenantID, &r.UserID, &r.Documents); err != nil {
				return err
			}
			act.Documents = append(act.Documents, r)
		}
		return drows.Err()
	})
	return act, err
}

const usageColumns = `tenant_id, day, chatbot_id, user_id, model, requests, errors, prompt_tokens, completion_tokens,
	cost_micros, chat_turns, conversations, documents`

// ReplaceUsageDay implements usage.Store: the day's rows of every tenant
// are deleted and rows inserted, in one transaction. Only the all-tenants
// scope may: the rollup rebuilds a day for everyone.
func (db *DB) ReplaceUsageDay(ctx context.Context, day string, rows []usage.Row) error {
	if err := requireAllTenants(ctx); err != nil {
		return err
	}
	for _, r := range rows {
		if r.Day != day || r.TenantID == "" {
			return nodus.Errorf(nodus.EINVALID, "usage row of %q for tenant %q in day %s", r.Day, r.TenantID, day)
		}
	}
	return db.Write(ctx, func(tx *Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM usage_daily WHERE day = ?`, day); err != nil {
			return err
		}
		for _, n := range chunkSizes(len(rows), maxChunkRows) {
			args := make([]any, 0, n*13)
			for _, r := range rows[:n] {
				args = append(args, r.TenantID, r.Day, cleanText(r.ChatbotID), cleanText(r.UserID), cleanText(r.Model), r.Requests,
					r.Errors, r.PromptTokens, r.CompletionTokens, r.CostMicros, r.ChatTurns, r.Conversations, r.Documents)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO usage_daily (`+usageColumns+`) VALUES `+valuesSQL(n, 13), args...); err != nil {
				return err
			}
			rows = rows[n:]
		}
		return nil
	})
}

// usageGroupColumns maps a query's groups to their columns.
var usageGroupColumns = map[string]string{usage.GroupDay: "day", usage.GroupChatbot: "chatbot_id",
	usage.GroupUser: "user_id", usage.GroupModel: "model"}

// ListUsage implements usage.Store for the scoped tenant (one tenant: a
// sum across tenants means nothing here).
func (db *DB) ListUsage(ctx context.Context, q usage.Query, limit int) ([]usage.Row, error) {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return nil, err
	}
	var cols []string
	for _, g := range q.GroupBy {
		c, ok := usageGroupColumns[g]
		if !ok {
			return nil, nodus.Errorf(nodus.EINVALID, "unknown group %q", g)
		}
		cols = append(cols, c)
	}
	sel, group := "", ""
	if len(cols) > 0 {
		sel = strings.Join(cols, ", ") + ", "
		group = ` GROUP BY ` + strings.Join(cols, ", ") + ` ORDER BY ` + strings.Join(cols, ", ")
	}
	query := `SELECT ` + sel + `COALESCE(SUM(requests), 0), COALESCE(SUM(errors), 0), COALESCE(SUM(prompt_tokens), 0),
		COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cost_micros), 0), COALESCE(SUM(chat_turns), 0),
		COALESCE(SUM(conversations), 0), COALESCE(SUM(documents), 0)
		FROM usage_daily WHERE tenant_id = ? AND day >= ? AND day <= ?` + group + ` LIMIT ?`
	out := []usage.Row{}
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, query, tenantID, q.From, q.To, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r usage.Row
			dest := make([]any, 0, len(cols)+8)
			for _, g := range q.GroupBy {
				switch g {
				case usage.GroupDay:
					dest = append(dest, &r.Day)
				case usage.GroupChatbot:
					dest = append(dest, &r.ChatbotID)
				case usage.GroupUser:
					dest = append(dest, &r.UserID)
				case usage.GroupModel:
					dest = append(dest, &r.Model)
				}
			}
			dest = append(dest, &r.Requests, &r.Errors, &r.PromptTokens, &r.CompletionTokens, &r.CostMicros, &r.ChatTurns,
				&r.Conversations, &r.Documents)
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			r.TenantID = tenantID
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	// Without groups an empty period still sums to one row of zeros;
	// a tenant with no usage has no rows to show.
	if len(cols) == 0 && len(out) == 1 && out[0] == (usage.Row{TenantID: tenantID}) {
		out = out[:0]
	}
	return out, nil
}

// DeleteUsageTenant implements usage.Store.
func (db *DB) DeleteUsageTenant(ctx context.Context) error {
	tenantID, err := nodus.RequireTenant(ctx)
	if err != nil {
		return err
	}
	return db.Write(ctx, func(tx *Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM usage_daily WHERE tenant_id = ?`, tenantID)
		return err
	})
}

// DailyGatewayUsage implements usage.Gateway over the gateway database:
// the day's rollups of the tenants in scope, summed by tenant, user and
// model.
func (db *DB) DailyGatewayUsage(ctx context.Context, day string) ([]usage.Row, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []usage.Row
	err = db.Read(ctx, func(tx *Tx) error {
		rows, err := tx.Query(ctx, `SELECT tenant_id, user_id, model, SUM(requests), SUM(failures), SUM(prompt_tokens),
			SUM(completion_tokens), SUM(cost_micros) FROM gateway_daily_spend WHERE day = ? AND `+cond+`
			GROUP BY tenant_id, user_id, model`, append([]any{day}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r := usage.Row{Day: day}
			if err := rows.Scan(&r.TenantID, &r.UserID, &r.Model, &r.Requests, &r.Errors, &r.PromptTokens,
				&r.CompletionTokens, &r.CostMicros); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// usageCallChunk bounds the ids of one lookup.
const usageCallChunk = 256

// GatewayCalls implements usage.Gateway over the gateway database: the
// spend log rows of the ids, in scope, that still have one.
func (db *DB) GatewayCalls(ctx context.Context, requestIDs []string) ([]usage.Call, error) {
	cond, args, err := scopeCond(ctx, "tenant_id")
	if err != nil {
		return nil, err
	}
	var out []usage.Call
	err = db.Read(ctx, func(tx *Tx) error {
		out = out[:0]
		for ids := requestIDs; len(ids) > 0; {
			n := min(len(ids), usageCallChunk)
			qargs := make([]any, 0, n+len(args))
			for _, id := range ids[:n] {
				qargs = append(qargs, id)
			}
			rows, err := tx.Query(ctx, `SELECT request_id, tenant_id, user_id, model, prompt_tokens, completion_tokens,
				cost_micros, status, started_at FROM gateway_spend_logs WHERE request_id IN (`+placeholders(n)+`) AND `+cond,
				append(qargs, args...)...)
			if err != nil {
				return err
			}
			for rows.Next() {
				var c usage.Call
				var status string
				if err := rows.Scan(&c.RequestID, &c.TenantID, &c.UserID, &c.Model, &c.PromptTokens, &c.CompletionTokens,
					&c.CostMicros, &status, &c.StartedAt); err != nil {
					rows.Close()
					return err
				}
				c.Failed = status == gateway.StatusError
				out = append(out, c)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			ids = ids[n:]
		}
		return nil
	})
	return out, err
}
