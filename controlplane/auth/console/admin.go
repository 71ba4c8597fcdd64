package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pilothouse/pilothouse/controlplane/audit"
	"github.com/pilothouse/pilothouse/controlplane/auth"
	"github.com/pilothouse/pilothouse/controlplane/jsonbody"
	authui "github.com/pilothouse/pilothouse/ui/auth"
)

// outcome is what an admin action reports on the page it renders.
type outcome struct {
	status int
	notice string
	err    error
	secret *authui.NewSecret
}

func (c *Console) adminPage(w http.ResponseWriter, r *http.Request) {
	c.renderAdmin(w, r, outcome{status: http.StatusOK})
}

func (c *Console) renderAdmin(w http.ResponseWriter, r *http.Request, o outcome) {
	ctx := r.Context()
	p := authui.AdminProps{Shell: c.shell(r, "admin"), Secret: o.secret, Notice: o.notice, AgentsOpen: c.cfg.AgentsOpen(ctx)}
	for _, role := range auth.Roles {
		p.Roles = append(p.Roles, string(role))
	}
	if o.err != nil {
		p.Error = o.err.Error()
	}
	users, err := c.cfg.Auth.Users(ctx)
	if err == nil {
		for _, u := range users {
			p.Users = append(p.Users, authui.UserRow{Name: u.Name, Role: string(u.Role), Disabled: u.Disabled, Created: u.Created, Self: u.Name == p.Shell.User})
		}
	}
	for _, kind := range []auth.TokenKind{auth.KindAPI, auth.KindAgent} {
		tokens, terr := c.cfg.Auth.Tokens(ctx, kind)
		if terr != nil {
			err = terr
		}
		for _, t := range tokens {
			row := authui.TokenRow{ID: t.ID, Name: t.Name, Role: string(t.Role), Services: t.Services, CreatedBy: t.CreatedBy, Created: t.Created, LastUsed: t.LastUsed, Revoked: t.Revoked}
			if kind == auth.KindAPI {
				p.APITokens = append(p.APITokens, row)
			} else {
				p.AgentTokens = append(p.AgentTokens, row)
			}
		}
	}
	if err != nil {
		c.cfg.Logger.Error("console: admin page", "err", err)
		p.Error = "could not read users and tokens: " + err.Error()
		o.status = http.StatusInternalServerError
	}
	render(w, r, o.status, authui.AdminPage(p))
}

// statusOf maps an auth error to an HTTP status.
func statusOf(err error) int {
	switch {
	case errors.Is(err, auth.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, auth.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, auth.ErrExists), errors.Is(err, auth.ErrLastAdmin), errors.Is(err, auth.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, auth.ErrUnavailable):
		// Shared through Consul, which is unreachable: nothing changed.
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (c *Console) parseForm(w http.ResponseWriter, r *http.Request) bool {
	if err := jsonbody.ParseForm(w, r, maxFormBytes); err != nil {
		c.renderAdmin(w, r, outcome{status: jsonbody.AsError(err).Status, err: fmt.Errorf("console: bad form: %w", err)})
		return false
	}
	return true
}

// Operations shared by the page and the JSON API. Each records its audit
// event on success.

func (c *Console) createUser(r *http.Request, name string, role auth.Role, password string) (auth.User, string, error) {
	generated := ""
	if password == "" {
		password = auth.GeneratePassword()
		generated = password
	}
	u, err := c.cfg.Auth.CreateUser(r.Context(), name, password, role)
	if err != nil {
		return auth.User{}, "", err
	}
	c.record(r, audit.Event{Action: audit.ActionUserCreate, Target: name, Detail: "role " + string(role)})
	return u, generated, nil
}

func (c *Console) updateUser(r *http.Request, name string, ch auth.UserChange) (auth.User, string, error) {
	before, err := c.cfg.Auth.User(r.Context(), name)
	if err != nil {
		return auth.User{}, "", err
	}
	generated := ""
	if ch.Password != nil && *ch.Password == "" {
		pw := auth.GeneratePassword()
		ch.Password, generated = &pw, pw
	}
	u, err := c.cfg.Auth.UpdateUser(r.Context(), name, ch)
	if err != nil {
		return auth.User{}, "", err
	}
	var what []string
	if ch.Role != nil && before.Role != u.Role {
		what = append(what, fmt.Sprintf("role %s -> %s", before.Role, u.Role))
	}
	if ch.Disabled != nil && before.Disabled != u.Disabled {
		what = append(what, map[bool]string{true: "disabled", false: "enabled"}[u.Disabled])
	}
	if ch.Password != nil {
		what = append(what, "password reset")
	}
	if len(what) > 0 {
		c.record(r, audit.Event{Action: audit.ActionUserUpdate, Target: name, Detail: strings.Join(what, "; ")})
	}
	return u, generated, nil
}

func (c *Console) createToken(r *http.Request, nt auth.NewToken) (string, auth.Token, error) {
	id, _ := auth.UserFrom(r.Context())
	nt.CreatedBy = id.Name
	secret, t, err := c.cfg.Auth.CreateToken(r.Context(), nt)
	if err != nil {
		return "", auth.Token{}, err
	}
	detail := string(t.Kind) + " token"
	if t.Kind == auth.KindAPI {
		detail += ", role " + string(t.Role)
	} else if len(t.Services) > 0 {
		detail += ", services " + strings.Join(t.Services, ",")
	}
	c.record(r, audit.Event{Action: audit.ActionTokenCreate, Target: t.Name + " (" + t.ID + ")", Detail: detail})
	return secret, t, nil
}

func (c *Console) revokeToken(r *http.Request, id string) (auth.Token, error) {
	t, err := c.cfg.Auth.RevokeToken(r.Context(), id)
	if err != nil {
		return auth.Token{}, err
	}
	c.record(r, audit.Event{Action: audit.ActionTokenRevoke, Target: t.Name + " (" + t.ID + ")", Detail: string(t.Kind) + " token"})
	return t, nil
}

func (c *Console) adminCreateUser(w http.ResponseWriter, r *http.Request) {
	if !c.parseForm(w, r) {
		return
	}
	name := strings.TrimSpace(r.PostForm.Get("name"))
	_, pw, err := c.createUser(r, name, auth.Role(r.PostForm.Get("role")), "")
	if err != nil {
		c.renderAdmin(w, r, outcome{status: statusOf(err), err: err})
		return
	}
	c.renderAdmin(w, r, outcome{status: http.StatusOK, notice: "User " + name + " created.", secret: &authui.NewSecret{What: "Password of " + name, Secret: pw}})
}

func (c *Console) adminSetRole(w http.ResponseWriter, r *http.Request) {
	if !c.parseForm(w, r) {
		return
	}
	name := r.PathValue("name")
	role := auth.Role(r.PostForm.Get("role"))
	if _, _, err := c.updateUser(r, name, auth.UserChange{Role: &role}); err != nil {
		c.renderAdmin(w, r, outcome{status: statusOf(err), err: err})
		return
	}
	c.renderAdmin(w, r, outcome{status: http.StatusOK, notice: name + " is now " + string(role) + "."})
}

func (c *Console) adminResetPassword(w http.ResponseWriter, r *http.Request) {
	if !c.parseForm(w, r) {
		return
	}
	name := r.PathValue("name")
	empty := ""
	_, pw, err := c.updateUser(r, name, auth.UserChange{Password: &empty})
	if err != nil {
		c.renderAdmin(w, r, outcome{status: statusOf(err), err: err})
		return
	}
	c.renderAdmin(w, r, outcome{status: http.StatusOK, notice: "Password of " + name + " reset; their sessions ended.", secret: &authui.NewSecret{What: "New password of " + name, Secret: pw}})
}

func (c *Console) adminSetDisabled(w http.ResponseWriter, r *http.Request) {
	if !c.parseForm(w, r) {
		return
	}
	name := r.PathValue("name")
	off := r.PostForm.Get("disabled") == "true"
	if _, _, err := c.updateUser(r, name, auth.UserChange{Disabled: &off}); err != nil {
		c.renderAdmin(w, r, outcome{status: statusOf(err), err: err})
		return
	}
	c.renderAdmin(w, r, outcome{status: http.StatusOK, notice: name + map[bool]string{true: " disabled.", false: " enabled."}[off]})
}

func splitServices(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, f)
	}
	return out
}

func (c *Console) adminCreateToken(w http.ResponseWriter, r *http.Request) {
	if !c.parseForm(w, r) {
		return
	}
	nt := auth.NewToken{
		Kind: auth.TokenKind(r.PostForm.Get("kind")), Name: strings.TrimSpace(r.PostForm.Get("name")),
		Role: auth.Role(r.PostForm.Get("role")), Services: splitServices(r.PostForm.Get("services")),
	}
	secret, t, err := c.createToken(r, nt)
	if err != nil {
		c.renderAdmin(w, r, outcome{status: statusOf(err), err: err})
		return
	}
	c.renderAdmin(w, r, outcome{status: http.StatusOK, notice: "Token " + t.Name + " created.", secret: &authui.NewSecret{What: string(t.Kind) + " token " + t.Name, Secret: secret}})
}

func (c *Console) adminRevokeToken(w http.ResponseWriter, r *http.Request) {
	t, err := c.revokeToken(r, r.PathValue("id"))
	if err != nil {
		c.renderAdmin(w, r, outcome{status: statusOf(err), err: err})
		return
	}
	c.renderAdmin(w, r, outcome{status: http.StatusOK, notice: "Token " + t.Name + " revoked."})
}

// JSON API.

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, err error) {
	writeJSON(w, statusOf(err), map[string]string{"error": err.Error()})
}

func decode(w http.ResponseWriter, r *http.Request, dst any) bool {
	if err := jsonbody.Decode(w, r, maxFormBytes, dst); err != nil {
		e := jsonbody.AsError(err)
		body := map[string]string{"error": "console: bad JSON body: " + e.Message}
		if e.Field != "" {
			body["field"] = e.Field
		}
		writeJSON(w, e.Status, body)
		return false
	}
	return true
}

func (c *Console) apiUsers(w http.ResponseWriter, r *http.Request) {
	users, err := c.cfg.Auth.Users(r.Context())
	if err != nil {
		writeErr(w, err)
		return
	}
	if users == nil {
		users = []auth.User{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": users})
}

// UserRequest is the body of POST /api/v1/users and PATCH
// /api/v1/users/{name}. An empty password on create, or "reset_password"
// on update, generates one, returned once as "password".
type UserRequest struct {
	Name          string     `json:"name,omitempty"`
	Role          *auth.Role `json:"role,omitempty"`
	Password      string     `json:"password,omitempty"`
	Disabled      *bool      `json:"disabled,omitempty"`
	ResetPassword bool       `json:"reset_password,omitempty"`
}

func (c *Console) apiCreateUser(w http.ResponseWriter, r *http.Request) {
	var req UserRequest
	if !decode(w, r, &req) {
		return
	}
	role := auth.RoleViewer
	if req.Role != nil {
		role = *req.Role
	}
	u, pw, err := c.createUser(r, req.Name, role, req.Password)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"user": u, "password": pw})
}

func (c *Console) apiUpdateUser(w http.ResponseWriter, r *http.Request) {
	var req UserRequest
	if !decode(w, r, &req) {
		return
	}
	ch := auth.UserChange{Role: req.Role, Disabled: req.Disabled}
	if req.Password != "" || req.ResetPassword {
		ch.Password = &req.Password
	}
	u, pw, err := c.updateUser(r, r.PathValue("name"), ch)
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": u, "password": pw})
}

func (c *Console) apiDeleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := c.cfg.Auth.DeleteUser(r.Context(), name); err != nil {
		writeErr(w, err)
		return
	}
	c.record(r, audit.Event{Action: audit.ActionUserDelete, Target: name})
	w.WriteHeader(http.StatusNoContent)
}

func (c *Console) apiTokens(w http.ResponseWriter, r *http.Request) {
	out := []auth.Token{}
	for _, kind := range []auth.TokenKind{auth.KindAPI, auth.KindAgent} {
		tokens, err := c.cfg.Auth.Tokens(r.Context(), kind)
		if err != nil {
			writeErr(w, err)
			return
		}
		out = append(out, tokens...)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// TokenRequest is the body of POST /api/v1/tokens.
type TokenRequest struct {
	Kind     auth.TokenKind `json:"kind"`
	Name     string         `json:"name"`
	Role     auth.Role      `json:"role,omitempty"`
	Services []string       `json:"services,omitempty"`
}

func (c *Console) apiCreateToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if !decode(w, r, &req) {
		return
	}
	secret, t, err := c.createToken(r, auth.NewToken{Kind: req.Kind, Name: req.Name, Role: req.Role, Services: req.Services})
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": t, "secret": secret})
}

func (c *Console) apiRevokeToken(w http.ResponseWriter, r *http.Request) {
	t, err := c.revokeToken(r, r.PathValue("id"))
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": t})
}
