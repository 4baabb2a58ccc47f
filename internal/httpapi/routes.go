package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/nodus-os/nodus/internal/identity"
	"github.com/nodus-os/nodus/internal/tracing"
)

// route is one entry of the API: its pattern, its handler and the limits
// it needs beyond the defaults.
type route struct {
	pattern string
	handler http.Handler
	// public routes need no credentials; every other route names the
	// action the caller's role must allow (NewServer refuses a route with
	// neither).
	public bool
	action identity.Action
	// keyed routes authenticate their own callers with the gateway's
	// virtual keys (the OpenAI-compatible API) instead of sessions and
	// tokens.
	keyed bool
	// timeout overrides Config.RequestTimeout; maxBody overrides
	// Config.MaxBodyBytes.
	timeout time.Duration
	maxBody int64
	// quiet routes (probes, scrapes) log successes at debug level.
	quiet bool
}

// gatewayLimits are the body limits and timeouts of the model API: prompts
// and audio are larger than management requests, and streams last long.
var gatewayLimits = map[string]struct {
	maxBody int64
	timeout time.Duration
}{
	"POST /v1/chat/completions":     {8 << 20, 10 * time.Minute},
	"POST /v1/messages":             {8 << 20, 10 * time.Minute},
	"POST /v1/embeddings":           {8 << 20, 2 * time.Minute},
	"POST /v1/audio/transcriptions": {26 << 20, 10 * time.Minute},
}

// gatewayRoutes are the gateway's OpenAI- and Anthropic-compatible routes.
func (s *Server) gatewayRoutes() []route {
	if s.deps.Gateway == nil {
		return nil
	}
	var out []route
	for pattern, h := range s.deps.Gateway.Routes() {
		lim := gatewayLimits[pattern]
		out = append(out, route{pattern: pattern, handler: h, keyed: true, maxBody: lim.maxBody, timeout: lim.timeout})
	}
	return out
}

// routes lists every route the API serves.
func (s *Server) routes() []route {
	return append(s.gatewayRoutes(), []route{
		{pattern: "GET /health", handler: s.handleHealth(), public: true, quiet: true},
		{pattern: "GET /ready", handler: s.handleReady(), public: true, quiet: true, timeout: 10 * time.Second},
		{pattern: "GET /metrics", handler: s.handleMetrics(), public: true, quiet: true, timeout: 10 * time.Second},

		{pattern: "POST /api/v1/auth/login", handler: s.handleLogin(), public: true, maxBody: 8 << 10},
		{pattern: "POST /api/v1/auth/logout", handler: s.handleLogout(), action: identity.ActionReadSelf},
		{pattern: "GET /api/v1/me", handler: s.handleMe(), action: identity.ActionReadSelf},
		{pattern: "POST /api/v1/me/password", handler: s.handleChangePassword(), action: identity.ActionUpdateSelf, maxBody: 8 << 10},
		{pattern: "GET /api/v1/audit", handler: s.handleListAudit(), action: identity.ActionReadAudit},
		{pattern: "POST /api/v1/tokens", handler: s.handleCreateToken(), action: identity.ActionUpdateSelf},
		{pattern: "GET /api/v1/tokens", handler: s.handleListTokens(), action: identity.ActionReadSelf},
		{pattern: "DELETE /api/v1/tokens/{id}", handler: s.handleRevokeToken(), action: identity.ActionUpdateSelf},
		{pattern: "PATCH /api/v1/me", handler: s.handleUpdateMe(), action: identity.ActionUpdateSelf, maxBody: 8 << 10},

		{pattern: "GET /api/v1/tenants", handler: s.handleListTenants(), action: identity.ActionReadTenant},
		{pattern: "POST /api/v1/tenants", handler: s.handleCreateTenant(), action: identity.ActionManageTenants, maxBody: 16 << 10},
		{pattern: "GET /api/v1/tenants/{id}", handler: s.handleGetTenant(), action: identity.ActionReadTenant},
		{pattern: "PATCH /api/v1/tenants/{id}", handler: s.handleUpdateTenant(), action: identity.ActionManageTenants, maxBody: 16 << 10},
		{pattern: "DELETE /api/v1/tenants/{id}", handler: s.handleDeleteTenant(), action: identity.ActionManageTenants},
		{pattern: "GET /api/v1/users", handler: s.handleListUsers(), action: identity.ActionReadUsers},
		{pattern: "POST /api/v1/users", handler: s.handleCreateUser(), action: identity.ActionManageUsers, maxBody: 8 << 10},
		{pattern: "GET /api/v1/users/{id}", handler: s.handleGetUser(), action: identity.ActionReadUsers},
		{pattern: "PATCH /api/v1/users/{id}", handler: s.handleUpdateUser(), action: identity.ActionManageUsers, maxBody: 8 << 10},
		{pattern: "DELETE /api/v1/users/{id}", handler: s.handleDeleteUser(), action: identity.ActionManageUsers},

		{pattern: "GET /api/v1/menus", handler: s.handleMenu(), action: identity.ActionReadMenus},
		{pattern: "GET /api/v1/menu-items", handler: s.handleListMenuItems(), action: identity.ActionManageMenus},
		{pattern: "POST /api/v1/menu-items", handler: s.handleCreateMenuItem(), action: identity.ActionManageMenus, maxBody: 16 << 10},
		{pattern: "GET /api/v1/menu-items/{id}", handler: s.handleFindMenuItem(), action: identity.ActionManageMenus},
		{pattern: "PATCH /api/v1/menu-items/{id}", handler: s.handleUpdateMenuItem(), action: identity.ActionManageMenus, maxBody: 16 << 10},
		{pattern: "DELETE /api/v1/menu-items/{id}", handler: s.handleDeleteMenuItem(), action: identity.ActionManageMenus},

		{pattern: "GET /api/v1/settings", handler: s.handleGetSettings(), action: identity.ActionReadSettings},
		{pattern: "PATCH /api/v1/settings", handler: s.handlePatchSettings(), action: identity.ActionManageSetting, maxBody: 16 << 10},
		{pattern: "POST /api/v1/settings/email/test", handler: s.handleTestEmail(), action: identity.ActionManageSetting, maxBody: 4 << 10, timeout: time.Minute},

		{pattern: "GET /api/v1/egress/policy", handler: s.handleGetEgressPolicy(), action: identity.ActionReadEgress},
		{pattern: "PUT /api/v1/egress/policy", handler: s.handlePutEgressPolicy(), action: identity.ActionManageEgress, maxBody: 128 << 10},
		{pattern: "GET /api/v1/egress/platform", handler: s.handleGetEgressPlatform(), action: identity.ActionReadEgress},
		{pattern: "PUT /api/v1/egress/platform", handler: s.handlePutEgressPlatform(), action: identity.ActionManageEgress, maxBody: 256 << 10},
		{pattern: "POST /api/v1/egress/check", handler: s.handleCheckEgress(), action: identity.ActionReadEgress, maxBody: 8 << 10},

		{pattern: "GET /api/v1/vault", handler: s.handleVaultStatus(), action: identity.ActionReadVault},
		{pattern: "GET /api/v1/vault/environments", handler: s.handleListVaultEnvironments(), action: identity.ActionReadVault},
		{pattern: "POST /api/v1/vault/environments", handler: s.handleCreateVaultEnvironment(), action: identity.ActionManageVault, maxBody: 8 << 10},
		{pattern: "DELETE /api/v1/vault/environments/{id}", handler: s.handleDeleteVaultEnvironment(), action: identity.ActionManageVault},
		{pattern: "PATCH /api/v1/vault/config", handler: s.handleUpdateVaultConfig(), action: identity.ActionManageVault, maxBody: 8 << 10},
		{pattern: "GET /api/v1/vault/secrets", handler: s.handleListVaultSecrets(), action: identity.ActionReadVault},
		{pattern: "GET /api/v1/vault/secret", handler: s.handleGetVaultSecret(), action: identity.ActionReadVault},
		{pattern: "PUT /api/v1/vault/secret", handler: s.handleWriteVaultSecret(), action: identity.ActionWriteVault, maxBody: 128 << 10},
		{pattern: "POST /api/v1/vault/secret/reveal", handler: s.handleRevealVaultSecret(), action: identity.ActionRevealVault, maxBody: 8 << 10},
		{pattern: "DELETE /api/v1/vault/secret", handler: s.handleDeleteVaultSecret(), action: identity.ActionWriteVault},
		{pattern: "POST /api/v1/vault/secret/undelete", handler: s.handleUndeleteVaultSecret(), action: identity.ActionWriteVault, maxBody: 8 << 10},
		{pattern: "POST /api/v1/vault/secret/destroy", handler: s.handleDestroyVaultSecret(), action: identity.ActionManageVault, maxBody: 16 << 10},
		{pattern: "GET /api/v1/vault/handles", handler: s.handleListVaultHandles(), action: identity.ActionManageVault},
		{pattern: "POST /api/v1/vault/handles", handler: s.handleCreateVaultHandle(), action: identity.ActionManageVault, maxBody: 16 << 10},
		{pattern: "GET /api/v1/vault/handles/{id}", handler: s.handleGetVaultHandle(), action: identity.ActionManageVault},
		{pattern: "PATCH /api/v1/vault/handles/{id}", handler: s.handleUpdateVaultHandle(), action: identity.ActionManageVault, maxBody: 16 << 10},
		{pattern: "DELETE /api/v1/vault/handles/{id}", handler: s.handleDeleteVaultHandle(), action: identity.ActionManageVault},
		{pattern: "GET /api/v1/vault/grants", handler: s.handleListVaultGrants(), action: identity.ActionManageVault},
		{pattern: "POST /api/v1/vault/grants", handler: s.handleCreateVaultGrant(), action: identity.ActionManageVault, maxBody: 8 << 10},
		{pattern: "DELETE /api/v1/vault/grants/{id}", handler: s.handleDeleteVaultGrant(), action: identity.ActionManageVault},
		{pattern: "GET /api/v1/vault/machines", handler: s.handleListVaultMachines(), action: identity.ActionManageVault},
		{pattern: "POST /api/v1/vault/machines", handler: s.handleCreateVaultMachine(), action: identity.ActionManageVault, maxBody: 16 << 10},
		{pattern: "GET /api/v1/vault/machines/{id}", handler: s.handleGetVaultMachine(), action: identity.ActionManageVault},
		{pattern: "PATCH /api/v1/vault/machines/{id}", handler: s.handleUpdateVaultMachine(), action: identity.ActionManageVault, maxBody: 16 << 10},
		{pattern: "DELETE /api/v1/vault/machines/{id}", handler: s.handleDeleteVaultMachine(), action: identity.ActionManageVault},
		{pattern: "POST /api/v1/vault/machines/{id}/secret", handler: s.handleRotateVaultMachineSecret(), action: identity.ActionManageVault},
		{pattern: "POST /api/v1/vault/auth/machine", handler: s.handleMachineLogin(), public: true, maxBody: 4 << 10},
		{pattern: "GET /api/v1/gateway/deployments", handler: s.handleListDeployments(), action: identity.ActionManageGateway},
		{pattern: "POST /api/v1/gateway/deployments", handler: s.handleCreateDeployment(), action: identity.ActionManageGateway, maxBody: 16 << 10},
		{pattern: "PUT /api/v1/gateway/deployments/{id}", handler: s.handleUpdateDeployment(), action: identity.ActionManageGateway, maxBody: 16 << 10},
		{pattern: "DELETE /api/v1/gateway/deployments/{id}", handler: s.handleDeleteDeployment(), action: identity.ActionManageGateway},
		{pattern: "GET /api/v1/gateway/keys", handler: s.handleListKeys(), action: identity.ActionUseGateway},
		{pattern: "POST /api/v1/gateway/keys", handler: s.handleCreateKey(), action: identity.ActionUseGateway, maxBody: 32 << 10},
		{pattern: "PATCH /api/v1/gateway/keys/{id}", handler: s.handleUpdateKey(), action: identity.ActionUseGateway, maxBody: 32 << 10},
		{pattern: "POST /api/v1/gateway/keys/{id}/rotate", handler: s.handleRotateKey(), action: identity.ActionUseGateway, maxBody: 4 << 10},
		{pattern: "DELETE /api/v1/gateway/keys/{id}", handler: s.handleDeleteKey(), action: identity.ActionUseGateway},
		{pattern: "GET /api/v1/gateway/budgets", handler: s.handleListBudgets(), action: identity.ActionManageGateway},
		{pattern: "PUT /api/v1/gateway/budgets", handler: s.handlePutBudget(), action: identity.ActionManageGateway, maxBody: 4 << 10},
		{pattern: "DELETE /api/v1/gateway/budgets/{id}", handler: s.handleDeleteBudget(), action: identity.ActionManageGateway},
		{pattern: "GET /api/v1/gateway/router-settings", handler: s.handleGetRouterSettings(), action: identity.ActionManageGateway},
		{pattern: "PUT /api/v1/gateway/router-settings", handler: s.handlePutRouterSettings(), action: identity.ActionManageGateway, maxBody: 256 << 10},
		{pattern: "GET /api/v1/gateway/prices", handler: s.handleListPrices(), action: identity.ActionManageGateway},
		{pattern: "PUT /api/v1/gateway/prices/{model...}", handler: s.handlePutPrice(), action: identity.ActionManageGateway, maxBody: 4 << 10},
		{pattern: "DELETE /api/v1/gateway/prices/{model...}", handler: s.handleDeletePrice(), action: identity.ActionManageGateway},
		{pattern: "POST /api/v1/gateway/import", handler: s.handleImport(), action: identity.ActionManageGateway, maxBody: 1 << 20},
		{pattern: "GET /api/v1/spend", handler: s.handleListSpend(), action: identity.ActionUseGateway, timeout: 5 * time.Minute},
		{pattern: "GET /api/v1/knowledge-bases", handler: s.handleListKnowledgeBases(), action: identity.ActionReadKnowledge},
		{pattern: "POST /api/v1/knowledge-bases", handler: s.handleCreateKnowledgeBase(), action: identity.ActionManageKnowledge, maxBody: 16 << 10},
		{pattern: "GET /api/v1/knowledge-bases/{id}", handler: s.handleGetKnowledgeBase(), action: identity.ActionReadKnowledge},
		{pattern: "PATCH /api/v1/knowledge-bases/{id}", handler: s.handleUpdateKnowledgeBase(), action: identity.ActionManageKnowledge, maxBody: 16 << 10},
		{pattern: "DELETE /api/v1/knowledge-bases/{id}", handler: s.handleDeleteKnowledgeBase(), action: identity.ActionManageKnowledge},
		{pattern: "POST /api/v1/knowledge-bases/{id}/search", handler: s.handleSearchKnowledgeBase(), action: identity.ActionReadKnowledge, maxBody: searchMaxBody},
		// The same search as an MCP tool (knowledge_mcp.go); GET and
		// DELETE 405, as above.
		{pattern: "POST /api/v1/knowledge-bases/{id}/mcp", handler: s.handleKnowledgeMCP(), action: identity.ActionReadKnowledge, maxBody: searchMaxBody},
		{pattern: "GET /api/v1/knowledge-bases/{id}/documents", handler: s.handleListDocuments(), action: identity.ActionReadKnowledge},
		{pattern: "POST /api/v1/knowledge-bases/{id}/documents", handler: s.handleUploadDocument(), action: identity.ActionManageKnowledge,
			maxBody: uploadLimit + uploadEnvelope, timeout: 10 * time.Minute},
		{pattern: "POST /api/v1/knowledge-bases/{id}/documents/import-url", handler: s.handleImportURL(), action: identity.ActionManageKnowledge,
			maxBody: importURLMaxBody, timeout: 10 * time.Minute},
		{pattern: "POST /api/v1/knowledge-bases/{id}/documents/bulk", handler: s.handleBulkDocuments(), action: identity.ActionManageKnowledge,
			maxBody: bulkMaxBody, timeout: 30 * time.Minute},
		{pattern: "GET /api/v1/knowledge-bases/{id}/documents/events", handler: s.handleDocumentEvents(documentEventsConfig{}), action: identity.ActionReadKnowledge,
			timeout: documentEventsTimeout},
		{pattern: "GET /api/v1/knowledge-bases/{id}/documents/{doc}", handler: s.handleGetDocument(), action: identity.ActionReadKnowledge},
		{pattern: "GET /api/v1/knowledge-bases/{id}/documents/{doc}/file", handler: s.handleDocumentFile(), action: identity.ActionReadKnowledge},
		{pattern: "DELETE /api/v1/knowledge-bases/{id}/documents/{doc}", handler: s.handleDeleteDocument(), action: identity.ActionManageKnowledge},
		{pattern: "POST /api/v1/knowledge-bases/{id}/documents/{doc}/retry", handler: s.handleRetryDocument(), action: identity.ActionManageKnowledge, maxBody: 4 << 10},
		{pattern: "POST /api/v1/agent/apps/{app}/users/{user}/sessions", handler: s.handleCreateAgentSession(), action: identity.ActionUseAgent, maxBody: agentSessionMaxBody},
		{pattern: "GET /api/v1/agent/apps/{app}/users/{user}/sessions", handler: s.handleListAgentSessions(), action: identity.ActionReadAgent},
		{pattern: "GET /api/v1/agent/apps/{app}/users/{user}/sessions/{session}", handler: s.handleGetAgentSession(), action: identity.ActionReadAgent},
		{pattern: "DELETE /api/v1/agent/apps/{app}/users/{user}/sessions/{session}", handler: s.handleDeleteAgentSession(), action: identity.ActionUseAgent},
		{pattern: "POST /api/v1/agent/apps/{app}/users/{user}/sessions/{session}/events", handler: s.handleAppendAgentEvent(), action: identity.ActionUseAgent, maxBody: agentEventMaxBody},
		// Long-term memory, by app and user as the sessions.
		{pattern: "POST /api/v1/agent/apps/{app}/users/{user}/memories", handler: s.handleAddMemories(), action: identity.ActionUseAgent,
			maxBody: memoryMaxBody, timeout: 5 * time.Minute},
		{pattern: "GET /api/v1/agent/apps/{app}/users/{user}/memories", handler: s.handleListMemories(), action: identity.ActionReadAgent},
		{pattern: "DELETE /api/v1/agent/apps/{app}/users/{user}/memories", handler: s.handleDeleteMemories(), action: identity.ActionUseAgent},
		{pattern: "POST /api/v1/agent/apps/{app}/users/{user}/memories/search", handler: s.handleSearchMemories(), action: identity.ActionReadAgent, maxBody: 16 << 10},
		{pattern: "GET /api/v1/agent/apps/{app}/users/{user}/memories/{id}", handler: s.handleGetMemory(), action: identity.ActionReadAgent},
		{pattern: "PUT /api/v1/agent/apps/{app}/users/{user}/memories/{id}", handler: s.handleUpdateMemory(), action: identity.ActionUseAgent, maxBody: 16 << 10},
		{pattern: "DELETE /api/v1/agent/apps/{app}/users/{user}/memories/{id}", handler: s.handleDeleteMemory(), action: identity.ActionUseAgent},
		{pattern: "GET /api/v1/agent/apps/{app}/users/{user}/memories/{id}/history", handler: s.handleMemoryHistory(), action: identity.ActionReadAgent},
		// The same memories as MCP tools (memory_mcp.go). The transport's
		// GET (a stream) and DELETE (a session) are not offered: the mux
		// answers them 405.
		{pattern: "POST /api/v1/agent/apps/{app}/users/{user}/mcp", handler: s.handleMemoryMCP(), action: identity.ActionReadAgent,
			maxBody: memoryMaxBody, timeout: 5 * time.Minute},
		{pattern: "POST /api/v1/agent/apps/{app}/users/{user}/sessions/{session}/memory", handler: s.handleAddSessionToMemory(),
			action: identity.ActionUseAgent, maxBody: 16 << 10, timeout: 5 * time.Minute},
		{pattern: "GET /api/v1/vault/keys", handler: s.handleVaultKeyStatus(), action: identity.ActionManageVault},
		{pattern: "POST /api/v1/vault/keys/rotate", handler: s.handleRotateVaultDataKey(), action: identity.ActionManageVault, timeout: 5 * time.Minute},
		// Chatbots (managed by admins; the service checks), conversations
		// and the chat turn (not for viewers).
		{pattern: "GET /api/v1/chatbots", handler: s.handleListChatbots(), action: identity.ActionReadContent},
		{pattern: "POST /api/v1/chatbots", handler: s.handleCreateChatbot(), action: identity.ActionWriteContent, maxBody: 64 << 10},
		{pattern: "GET /api/v1/chatbots/{id}", handler: s.handleGetChatbot(), action: identity.ActionReadContent},
		{pattern: "PATCH /api/v1/chatbots/{id}", handler: s.handleUpdateChatbot(), action: identity.ActionWriteContent, maxBody: 64 << 10},
		{pattern: "DELETE /api/v1/chatbots/{id}", handler: s.handleDeleteChatbot(), action: identity.ActionWriteContent},
		{pattern: "POST /api/v1/chatbots/{id}/chat", handler: s.handleChat(), action: identity.ActionWriteContent,
			maxBody: chatMaxBody, timeout: 10 * time.Minute},
		// The chatbot as an MCP tool (chat_mcp.go); GET and DELETE 405.
		{pattern: "POST /api/v1/chatbots/{id}/mcp", handler: s.handleChatbotMCP(), action: identity.ActionWriteContent,
			maxBody: chatMaxBody, timeout: 10 * time.Minute},
		{pattern: "GET /api/v1/conversations", handler: s.handleListConversations(), action: identity.ActionReadContent},
		{pattern: "GET /api/v1/conversations/{id}", handler: s.handleGetConversation(), action: identity.ActionReadContent},
		{pattern: "PATCH /api/v1/conversations/{id}", handler: s.handleUpdateConversation(), action: identity.ActionWriteContent, maxBody: 4 << 10},
		{pattern: "DELETE /api/v1/conversations/{id}", handler: s.handleDeleteConversation(), action: identity.ActionWriteContent},
		{pattern: "PUT /api/v1/messages/{id}/feedback", handler: s.handleSetFeedback(), action: identity.ActionWriteContent, maxBody: 8 << 10},
		{pattern: "DELETE /api/v1/messages/{id}/feedback", handler: s.handleClearFeedback(), action: identity.ActionWriteContent},
		// Notebooks (Llibreta): the caller's own and those shared with
		// them; the notebook service checks the share (notebooks.go).
		{pattern: "GET /api/v1/notebooks", handler: s.handleListNotebooks(), action: identity.ActionReadContent},
		{pattern: "POST /api/v1/notebooks", handler: s.handleCreateNotebook(), action: identity.ActionWriteContent, maxBody: notebookMaxBody},
		{pattern: "GET /api/v1/notebooks/{id}", handler: s.handleGetNotebook(), action: identity.ActionReadContent},
		{pattern: "PATCH /api/v1/notebooks/{id}", handler: s.handleUpdateNotebook(), action: identity.ActionWriteContent, maxBody: notebookMaxBody},
		{pattern: "DELETE /api/v1/notebooks/{id}", handler: s.handleDeleteNotebook(), action: identity.ActionWriteContent},
		{pattern: "GET /api/v1/notebooks/{id}/shares", handler: s.handleListNotebookShares(), action: identity.ActionReadContent},
		{pattern: "PUT /api/v1/notebooks/{id}/shares/{member}", handler: s.handlePutNotebookShare(), action: identity.ActionWriteContent, maxBody: 1 << 10},
		{pattern: "DELETE /api/v1/notebooks/{id}/shares/{member}", handler: s.handleDeleteNotebookShare(), action: identity.ActionWriteContent},
		{pattern: "GET /api/v1/notebooks/{id}/sources", handler: s.handleListNotebookSources(), action: identity.ActionReadContent},
		{pattern: "POST /api/v1/notebooks/{id}/sources", handler: s.handleAddNotebookSource(), action: identity.ActionWriteContent,
			maxBody: notebookSourceMaxBody, timeout: notebookSourceTimeout},
		{pattern: "GET /api/v1/notebooks/{id}/sources/{source}", handler: s.handleGetNotebookSource(), action: identity.ActionReadContent},
		{pattern: "PATCH /api/v1/notebooks/{id}/sources/{source}", handler: s.handleUpdateNotebookSource(), action: identity.ActionWriteContent, maxBody: 4 << 10},
		{pattern: "DELETE /api/v1/notebooks/{id}/sources/{source}", handler: s.handleDeleteNotebookSource(), action: identity.ActionWriteContent},
		{pattern: "GET /api/v1/notebooks/{id}/cards", handler: s.handleListNotebookCards(), action: identity.ActionReadContent},
		{pattern: "POST /api/v1/notebooks/{id}/cards", handler: s.handleCreateNotebookCard(), action: identity.ActionWriteContent, maxBody: notebookCardMaxBody},
		{pattern: "POST /api/v1/notebooks/{id}/cards/reorder", handler: s.handleReorderNotebookCards(), action: identity.ActionWriteContent, maxBody: 64 << 10},
		{pattern: "PATCH /api/v1/notebooks/{id}/cards/{card}", handler: s.handleUpdateNotebookCard(), action: identity.ActionWriteContent, maxBody: notebookCardMaxBody},
		{pattern: "DELETE /api/v1/notebooks/{id}/cards/{card}", handler: s.handleDeleteNotebookCard(), action: identity.ActionWriteContent},
		{pattern: "GET /api/v1/notebooks/{id}/chats", handler: s.handleListNotebookChats(), action: identity.ActionReadContent},
		{pattern: "POST /api/v1/notebooks/{id}/chats", handler: s.handleCreateNotebookChat(), action: identity.ActionWriteContent, maxBody: 4 << 10},
		{pattern: "GET /api/v1/notebooks/{id}/chats/{chat}", handler: s.handleGetNotebookChat(), action: identity.ActionReadContent},
		{pattern: "DELETE /api/v1/notebooks/{id}/chats/{chat}", handler: s.handleDeleteNotebookChat(), action: identity.ActionWriteContent},
		{pattern: "POST /api/v1/notebooks/{id}/chats/{chat}/messages", handler: s.handleAskNotebook(), action: identity.ActionWriteContent,
			maxBody: notebookAskMaxBody, timeout: notebookAskTimeout},
		{pattern: "POST /api/v1/notebooks/{id}/chats/{chat}/messages/{message}/card", handler: s.handleSaveNotebookAnswer(),
			action: identity.ActionWriteContent, maxBody: 4 << 10},
		// The caller's own notifications, and the tenant's webhooks.
		{pattern: "GET /api/v1/notifications", handler: s.handleListNotifications(), action: identity.ActionReadSelf},
		{pattern: "GET /api/v1/notifications/count", handler: s.handleCountNotifications(), action: identity.ActionReadSelf, quiet: true},
		{pattern: "POST /api/v1/notifications/{id}/read", handler: s.handleReadNotification(), action: identity.ActionUpdateSelf, maxBody: 1 << 10},
		{pattern: "POST /api/v1/notifications/read-all", handler: s.handleReadAllNotifications(), action: identity.ActionUpdateSelf, maxBody: 1 << 10},
		{pattern: "GET /api/v1/notifications/preferences", handler: s.handleGetNotificationPrefs(), action: identity.ActionReadSelf},
		{pattern: "PUT /api/v1/notifications/preferences", handler: s.handlePutNotificationPrefs(), action: identity.ActionUpdateSelf, maxBody: 4 << 10},
		{pattern: "GET /api/v1/webhooks", handler: s.handleListWebhooks(), action: identity.ActionManageSetting},
		{pattern: "POST /api/v1/webhooks", handler: s.handleCreateWebhook(), action: identity.ActionManageSetting, maxBody: 8 << 10},
		{pattern: "DELETE /api/v1/webhooks/{id}", handler: s.handleDeleteWebhook(), action: identity.ActionManageSetting},
		{pattern: "GET /api/v1/webhooks/{id}/deliveries", handler: s.handleListWebhookDeliveries(), action: identity.ActionManageSetting},
		// Audio recordings: a user's own, every one of the tenant's for
		// its admins; adding a transcript to a knowledge base manages it.
		{pattern: "POST /api/v1/recordings", handler: s.handleCreateRecording(), action: identity.ActionWriteContent,
			maxBody: s.recordingMaxBytes() + recordingEnvelope, timeout: 10 * time.Minute},
		{pattern: "GET /api/v1/recordings", handler: s.handleListRecordings(), action: identity.ActionReadContent},
		{pattern: "GET /api/v1/recordings/{id}", handler: s.handleGetRecording(), action: identity.ActionReadContent},
		{pattern: "PATCH /api/v1/recordings/{id}", handler: s.handleUpdateRecording(), action: identity.ActionWriteContent, maxBody: 4 << 10},
		{pattern: "DELETE /api/v1/recordings/{id}", handler: s.handleDeleteRecording(), action: identity.ActionWriteContent},
		{pattern: "GET /api/v1/recordings/{id}/audio", handler: s.handleRecordingAudio(), action: identity.ActionReadContent,
			timeout: 30 * time.Minute},
		{pattern: "POST /api/v1/recordings/{id}/retry", handler: s.handleRetryRecording(), action: identity.ActionWriteContent, maxBody: 1 << 10},
		{pattern: "POST /api/v1/recordings/{id}/knowledge", handler: s.handleRecordingToKnowledge(), action: identity.ActionManageKnowledge, maxBody: 4 << 10},
		// LLM tracing: Langfuse's ingestion, authenticated inside by a
		// tenant's key pair (public here only in that it takes no session
		// or token), the key pairs, and the query API.
		{pattern: "POST /api/public/ingestion", handler: s.handleIngestion(), public: true,
			maxBody: tracing.MaxBatchBytes, timeout: ingestionTimeout},
		{pattern: "POST /api/public/otel/v1/traces", handler: s.handleOTLPTraces(), public: true, maxBody: tracing.MaxBatchBytes, timeout: ingestionTimeout},
		{pattern: "GET /api/v1/tracing/keys", handler: s.handleListTracingKeys(), action: identity.ActionManageTracing},
		{pattern: "POST /api/v1/tracing/keys", handler: s.handleCreateTracingKey(), action: identity.ActionManageTracing, maxBody: 4 << 10},
		{pattern: "DELETE /api/v1/tracing/keys/{id}", handler: s.handleDeleteTracingKey(), action: identity.ActionManageTracing},
		{pattern: "GET /api/v1/tracing/settings", handler: s.handleGetTracingSettings(), action: identity.ActionReadTracing},
		{pattern: "PUT /api/v1/tracing/settings", handler: s.handleSetTracingSettings(), action: identity.ActionManageTracing, maxBody: 4 << 10},
		{pattern: "GET /api/v1/tracing/metrics", handler: s.handleTracingMetrics(), action: identity.ActionReadTracing},
		// Usage metrics per day, chatbot, user and model (JSON or CSV).
		{pattern: "GET /api/v1/metrics/usage", handler: s.handleUsageMetrics(), action: identity.ActionReadUsage},
		{pattern: "GET /api/v1/traces", handler: s.handleListTraces(), action: identity.ActionReadTracing},
		{pattern: "GET /api/v1/traces/{id}", handler: s.handleGetTrace(), action: identity.ActionReadTracing},
		{pattern: "POST /api/v1/scores", handler: s.handleCreateScore(), action: identity.ActionWriteTracing, maxBody: 80 << 10},
		// Sessions and users as views of the traces.
		{pattern: "GET /api/v1/tracing/sessions", handler: s.handleListTraceSessions(), action: identity.ActionReadTracing},
		{pattern: "GET /api/v1/tracing/sessions/{id}", handler: s.handleGetTraceSession(), action: identity.ActionReadTracing},
		{pattern: "GET /api/v1/tracing/users", handler: s.handleListTraceUsers(), action: identity.ActionReadTracing},
		// Langfuse's public read API, authenticated inside by a tenant's
		// key pair like the ingestion; its health check takes none.
		{pattern: "GET /api/public/health", handler: s.handlePublicHealth(), public: true, quiet: true},
		{pattern: "GET /api/public/projects", handler: s.handlePublicProjects(), public: true},
		{pattern: "GET /api/public/traces", handler: s.handlePublicListTraces(), public: true},
		{pattern: "GET /api/public/traces/{traceId}", handler: s.handlePublicGetTrace(), public: true, timeout: time.Minute},
		{pattern: "DELETE /api/public/traces/{traceId}", handler: s.handlePublicDeleteTrace(), public: true, timeout: time.Minute},
		{pattern: "GET /api/public/observations", handler: s.handlePublicListObservations(), public: true},
		{pattern: "GET /api/public/observations/{observationId}", handler: s.handlePublicGetObservation(), public: true},
		{pattern: "GET /api/public/sessions", handler: s.handlePublicListSessions(), public: true},
		{pattern: "GET /api/public/sessions/{sessionId}", handler: s.handlePublicGetSession(), public: true},
		{pattern: "GET /api/public/scores", handler: s.handlePublicListScores(), public: true},
		{pattern: "GET /api/public/v2/scores", handler: s.handlePublicListScores(), public: true},
		{pattern: "GET /api/public/scores/{scoreId}", handler: s.handlePublicGetScore(), public: true},
		{pattern: "POST /api/public/scores", handler: s.handlePublicCreateScore(), public: true, maxBody: 80 << 10},
		{pattern: "DELETE /api/public/scores/{scoreId}", handler: s.handlePublicDeleteScore(), public: true},
	}...)
}

// RouteInfo describes one route of the API: its method and path pattern,
// and whether it is public or the action it needs.
type RouteInfo struct {
	Method string
	Path   string
	Public bool
	Action identity.Action
}

// Routes lists every route of routes.go, for tests and tools that walk the
// route table from outside this package. Handlers are built but never
// called, which is why no handler may use the server's dependencies
// before it serves a request.
func Routes() []RouteInfo {
	var s Server
	var out []RouteInfo
	for _, rt := range s.routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		out = append(out, RouteInfo{Method: method, Path: path, Public: rt.public, Action: rt.action})
	}
	return out
}
