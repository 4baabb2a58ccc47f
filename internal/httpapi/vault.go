package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/nodus-os/nodus/internal/nodus"
	"github.com/nodus-os/nodus/internal/vault"
)

// This file serves the vault. Secrets are addressed by their location
// (environment, folder path, key) inside the caller's tenant, in the query
// of reads and the body of writes, so no request can even name another
// tenant's secret; a super_admin works on one tenant at a time with
// ?tenant_id=. Values leave only through POST /api/v1/vault/secret/reveal,
// an explicit, audited action. A sealed vault answers 503 on every route.

// vaultScope is the tenant a vault request acts on: the caller's own, or
// for a super_admin the one ?tenant_id= names (required, since a vault is
// always one tenant's).
func vaultScope(r *http.Request) (context.Context, error) {
	ctx, err := narrowScope(r)
	if err != nil {
		return nil, err
	}
	if _, all, _ := nodus.TenantScope(ctx); all {
		return nil, &nodus.Error{Code: nodus.EINVALID, Message: "the vault is a tenant's: name it with ?tenant_id=",
			Fields: map[string]string{"tenant_id": "required for a super_admin"}}
	}
	return ctx, nil
}

// vaultPrincipal is the caller as the vault sees it: a user, or a machine
// identity (vault.RoleMachine, its id as the user id).
func vaultPrincipal(r *http.Request) vault.Principal {
	c := callerFrom(r.Context())
	cl := clientOf(r)
	if c.machine != nil {
		return c.machine.Principal(cl.Address, cl.UserAgent)
	}
	return vault.Principal{UserID: c.principal.User.ID, Role: string(c.principal.User.Role), ActorKind: actorKind(c),
		Address: cl.Address, UserAgent: cl.UserAgent}
}

// vaultHandler runs fn in the vault scope with the caller's principal and
// writes its answer: status with the value, or the error.
func (s *Server) vaultHandler(status int, fn func(ctx context.Context, p vault.Principal, r *http.Request) (any, error)) http.Handler {
	return s.answer(status, func(r *http.Request) (any, error) {
		ctx, err := vaultScope(r)
		if err != nil {
			return nil, err
		}
		return fn(ctx, vaultPrincipal(r), r)
	})
}

// locationQuery reads a secret's location from the query.
func locationQuery(r *http.Request) vault.Location {
	q := r.URL.Query()
	path := q.Get("path")
	if path == "" {
		path = "/"
	}
	return vault.Location{Environment: q.Get("environment"), Path: path, Key: q.Get("key")}
}

// locationBody completes a location decoded from a body.
func locationBody(l vault.Location) vault.Location {
	if l.Path == "" {
		l.Path = "/"
	}
	return l
}

func (s *Server) handleVaultStatus() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		if s.deps.Vault.Sealed() {
			// Sealed is itself the answer a status route exists to give.
			return nil, nodus.Errorf(nodus.EUNAVAILABLE, "the vault is sealed: the master key is missing or wrong")
		}
		cfg, err := s.deps.Vault.FindTenantConfig(ctx, p)
		if err != nil {
			return nil, err
		}
		return map[string]any{"sealed": false, "config": cfg}, nil
	})
}

// Environments.

func (s *Server) handleListVaultEnvironments() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		envs, err := s.deps.Vault.ListEnvironments(ctx, p)
		return map[string]any{"environments": envs}, err
	})
}

func (s *Server) handleCreateVaultEnvironment() http.Handler {
	type request struct {
		Slug string `json:"slug"`
		Name string `json:"name"`
	}
	return s.vaultHandler(http.StatusCreated, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		env, err := s.deps.Vault.CreateEnvironment(ctx, p, req.Slug, req.Name)
		return map[string]any{"environment": env}, err
	})
}

func (s *Server) handleDeleteVaultEnvironment() http.Handler {
	return s.vaultHandler(http.StatusNoContent, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		return nil, s.deps.Vault.DeleteEnvironment(ctx, p, r.PathValue("id"))
	})
}

// Configuration.

func (s *Server) handleUpdateVaultConfig() http.Handler {
	type request struct {
		MaxVersions int `json:"max_versions"`
	}
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		cfg, err := s.deps.Vault.UpdateTenantConfig(ctx, p, req.MaxVersions)
		return map[string]any{"config": cfg}, err
	})
}

// Secrets.

func (s *Server) handleListVaultSecrets() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		q := r.URL.Query()
		f := vault.SecretFilter{Environment: q.Get("environment"), Path: q.Get("path"), Tag: q.Get("tag"),
			Recursive: q.Get("recursive") == "true", IncludeDeleted: q.Get("include_deleted") == "true",
			Cursor: cursor, Limit: limit}
		secrets, next, err := s.deps.Vault.ListSecrets(ctx, p, f)
		if secrets == nil {
			secrets = []vault.Secret{}
		}
		return map[string]any{"secrets": secrets, "next_cursor": next}, err
	})
}

func (s *Server) handleGetVaultSecret() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		loc := locationQuery(r)
		sec, err := s.deps.Vault.FindSecret(ctx, p, loc)
		if err != nil {
			return nil, err
		}
		versions, err := s.deps.Vault.ListVersions(ctx, p, loc)
		return map[string]any{"secret": sec, "versions": versions}, err
	})
}

func (s *Server) handleWriteVaultSecret() http.Handler {
	type request struct {
		vault.Location
		Value    *string         `json:"value"`
		Comment  string          `json:"comment"`
		Tags     []string        `json:"tags"`
		Metadata json.RawMessage `json:"metadata"`
		// CAS is the version the secret must be at (0: must not exist).
		CAS *int `json:"cas"`
	}
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		if req.Value == nil {
			return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid secret", Fields: map[string]string{"value": "required"}}
		}
		sec, err := s.deps.Vault.WriteSecret(ctx, p, vault.WriteInput{Location: locationBody(req.Location),
			Value: vault.NewValue(*req.Value), Comment: req.Comment, Tags: req.Tags, Metadata: req.Metadata, CAS: req.CAS})
		return map[string]any{"secret": sec}, err
	})
}

// handleRevealVaultSecret is the one route that returns a value: the
// newest version or the one asked for, with references expanded when
// asked. The read is audited before the answer is written, and refused
// if it cannot be.
func (s *Server) handleRevealVaultSecret() http.Handler {
	type request struct {
		vault.Location
		Version int  `json:"version"`
		Expand  bool `json:"expand"`
	}
	type response struct {
		Secret  vault.Secret `json:"secret"`
		Version int          `json:"version"`
		Value   string       `json:"value"`
	}
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		rv, err := s.deps.Vault.ReadSecret(ctx, p, locationBody(req.Location), vault.ReadOptions{Version: req.Version, Expand: req.Expand})
		if err != nil {
			return nil, err
		}
		return response{Secret: rv.Secret, Version: rv.Version, Value: rv.Value.Reveal()}, nil
	})
}

func (s *Server) handleDeleteVaultSecret() http.Handler {
	return s.vaultHandler(http.StatusNoContent, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		return nil, s.deps.Vault.DeleteSecret(ctx, p, locationQuery(r))
	})
}

func (s *Server) handleUndeleteVaultSecret() http.Handler {
	return s.vaultHandler(http.StatusNoContent, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var loc vault.Location
		if err := decodeJSON(r, &loc); err != nil {
			return nil, err
		}
		return nil, s.deps.Vault.UndeleteSecret(ctx, p, locationBody(loc))
	})
}

// handleDestroyVaultSecret wipes the ciphertext of some versions, or of
// every version and the secret itself with "all": true. It cannot be
// undone.
func (s *Server) handleDestroyVaultSecret() http.Handler {
	type request struct {
		vault.Location
		Versions []int `json:"versions"`
		All      bool  `json:"all"`
	}
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var req request
		if err := decodeJSON(r, &req); err != nil {
			return nil, err
		}
		loc := locationBody(req.Location)
		switch {
		case req.All && len(req.Versions) > 0:
			return nil, &nodus.Error{Code: nodus.EINVALID, Message: "invalid destroy",
				Fields: map[string]string{"versions": "not with all"}}
		case req.All:
			return map[string]any{"destroyed": "all"}, s.deps.Vault.DestroySecret(ctx, p, loc)
		}
		done, err := s.deps.Vault.DestroyVersions(ctx, p, loc, req.Versions)
		return map[string]any{"destroyed": done}, err
	})
}

// Handles.

func (s *Server) handleListVaultHandles() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		limit, cursor, err := pageQuery(r)
		if err != nil {
			return nil, err
		}
		handles, next, err := s.deps.Vault.ListHandles(ctx, p, cursor, limit)
		if handles == nil {
			handles = []vault.Handle{}
		}
		return map[string]any{"handles": handles, "next_cursor": next}, err
	})
}

func (s *Server) handleCreateVaultHandle() http.Handler {
	return s.vaultHandler(http.StatusCreated, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var in vault.HandleInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		in.Location = locationBody(in.Location)
		h, err := s.deps.Vault.CreateHandle(ctx, p, in)
		return map[string]any{"handle": h}, err
	})
}

func (s *Server) handleGetVaultHandle() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		h, err := s.deps.Vault.FindHandle(ctx, p, r.PathValue("id"))
		return map[string]any{"handle": h}, err
	})
}

func (s *Server) handleUpdateVaultHandle() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var in vault.HandleInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		in.Location = locationBody(in.Location)
		h, err := s.deps.Vault.UpdateHandle(ctx, p, r.PathValue("id"), in)
		return map[string]any{"handle": h}, err
	})
}

func (s *Server) handleDeleteVaultHandle() http.Handler {
	return s.vaultHandler(http.StatusNoContent, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		return nil, s.deps.Vault.DeleteHandle(ctx, p, r.PathValue("id"))
	})
}

// Grants.

func (s *Server) handleListVaultGrants() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		grants, err := s.deps.Vault.ListGrants(ctx, p)
		if grants == nil {
			grants = []vault.Grant{}
		}
		return map[string]any{"grants": grants}, err
	})
}

func (s *Server) handleCreateVaultGrant() http.Handler {
	return s.vaultHandler(http.StatusCreated, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		var in vault.GrantInput
		if err := decodeJSON(r, &in); err != nil {
			return nil, err
		}
		g, err := s.deps.Vault.CreateGrant(ctx, p, in)
		return map[string]any{"grant": g}, err
	})
}

func (s *Server) handleDeleteVaultGrant() http.Handler {
	return s.vaultHandler(http.StatusNoContent, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		return nil, s.deps.Vault.DeleteGrant(ctx, p, r.PathValue("id"))
	})
}

// Keys.

func (s *Server) handleVaultKeyStatus() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		st, err := s.deps.Vault.KeyStatus(ctx, p)
		return map[string]any{"keys": st}, err
	})
}

// handleRotateVaultDataKey gives the tenant a new data key and moves its
// values to it, batch by batch within the request's time; what a timeout
// leaves is finished by calling again (re-encryption is idempotent).
func (s *Server) handleRotateVaultDataKey() http.Handler {
	return s.vaultHandler(http.StatusOK, func(ctx context.Context, p vault.Principal, r *http.Request) (any, error) {
		tenantID, _, _ := nodus.TenantScope(ctx)
		version, err := s.deps.Vault.RotateDataKey(ctx, p, tenantID)
		if err != nil {
			return nil, err
		}
		batch := 500
		if v := r.URL.Query().Get("batch"); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				batch = n
			}
		}
		st, err := s.deps.Vault.ReencryptTenant(ctx, p, tenantID, batch)
		return map[string]any{"data_key_version": version, "reencrypted": st}, err
	})
}
