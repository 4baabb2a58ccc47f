package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/nodus-os/nodus/internal/vault"
)

// This file serves the vault's machine identities: their management by an
// org_admin (a super_admin with ?tenant_id=), and the public login that
// exchanges a client id and secret for an access token. The client secret
// and the token leave only in the one answer that creates them.

// machineCreated is the answer that carries a client secret, once.
type machineCreated struct {
	Machine      *vault.Machine `json:"machine"`
	ClientSecret string         `json:"client_secret"`
}

func (s *Server) handleListVaultMachines() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		machines, next, err := s.deps.Vault.ListMachines(ctx, p, cursor, limit)
		if machines == nil {
			machines = []vault.Machine{}
		}
		return map[string]any{"machines": machines, "next_cursor": next}, err
	})
}

func (s *Server) handleCreateVaultMachine() http.Handler {
	return s.vaultHandler(http.StatusCreated, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var in vault.MachineInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		m, secret, err := s.deps.Vault.CreateMachine(ctx, p, in)
		if err != nil {
			return nil, err
		}
		return machineCreated{Machine: m, ClientSecret: secret.Reveal()}, nil
	})
}

func (s *Server) handleGetVaultMachine() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		m, err := s.deps.Vault.FindMachine(ctx, p, r.PathValue("id"))
		return map[string]any{"machine": m}, err
	})
}

func (s *Server) handleUpdateVaultMachine() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var in vault.MachineUpdate
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		m, err := s.deps.Vault.UpdateMachine(ctx, p, r.PathValue("id"), in)
		return map[string]any{"machine": m}, err
	})
}

func (s *Server) handleDeleteVaultMachine() http.Handler {
	return s.vaultHandler(http.StatusNoContent, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		return nil, s.deps.Vault.DeleteMachine(ctx, p, r.PathValue("id"))
	})
}

// handleRotateVaultMachineSecret replaces the client secret, returning
// the new one once, and revokes the identity's tokens.
func (s *Server) handleRotateVaultMachineSecret() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		m, secret, err := s.deps.Vault.RotateMachineSecret(ctx, p, r.PathValue("id"))
		if err != nil {
			return nil, err
		}
		return machineCreated{Machine: m, ClientSecret: secret.Reveal()}, nil
	})
}

// handleMachineLogin is the public login of a machine identity: a client
// id and secret for an access token. Every failure is the same 401;
// repeated failures from one address for one client id become 429 with
// Retry-After.
func (s *Server) handleMachineLogin() http.Handler {
	type request struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	type response struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"` // seconds
		UsesLeft    *int   `json:"uses_left"`  // null: no limit
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		login, err := s.deps.Vault.Login(r.Context(), req.ClientID, req.ClientSecret, clientOf(r).Address)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, r, http.StatusOK, response{AccessToken: login.Token.Reveal(), TokenType: "Bearer",
			ExpiresIn: int64(login.ExpiresIn / time.Second), UsesLeft: login.UsesLeft})
	})
}
