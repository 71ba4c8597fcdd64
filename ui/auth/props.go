package auth

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed static
var staticFiles embed.FS

// StaticPath is where Static must be mounted.
const StaticPath = "/static/auth/"

// Static serves the pages' stylesheet under StaticPath.
func Static() http.Handler {
	sub, _ := fs.Sub(staticFiles, "static") // "static" is embedded above
	files := http.StripPrefix(strings.TrimSuffix(StaticPath, "/"), http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// Shell is what every signed-in page shows around its content.
type Shell struct {
	// User is the signed-in user's name; Role their role.
	User string
	Role string
	// CSRF is the session's CSRF token for forms and hx-headers; empty
	// for bearer-token requests.
	CSRF string
	// Nav is the active entry: "admin" or "audit".
	Nav string
	// Policies shows the dashboard's Policies entry in the header.
	Policies bool
}

// IsAdmin reports whether the admin link should show.
func (s Shell) IsAdmin() bool { return s.Role == "admin" }

// hxHeaders is the hx-headers attribute value carrying the CSRF token.
func hxHeaders(csrf string) string {
	b, _ := json.Marshal(map[string]string{"X-CSRF-Token": csrf})
	return string(b)
}

// LoginProps fills the login page.
type LoginProps struct {
	// Next is the local path to go to after signing in.
	Next string
	// CSRF is the login form's token (double-submitted with a cookie).
	CSRF string
	// Username is echoed back after a failed attempt.
	Username string
	// Error says why the last attempt failed.
	Error string
	// Notice is a neutral message, e.g. "signed out".
	Notice string
}

// UserRow is one user on the admin page.
type UserRow struct {
	Name     string
	Role     string
	Disabled bool
	Created  time.Time
	// Self marks the signed-in user.
	Self bool
}

// TokenRow is one API or agent token on the admin page.
type TokenRow struct {
	ID        string
	Name      string
	Role      string   // API tokens
	Services  []string // agent tokens; empty means any
	CreatedBy string
	Created   time.Time
	LastUsed  time.Time
	Revoked   time.Time
}

// tokensWhere returns, in order, the rows that are revoked or not.
func tokensWhere(rows []TokenRow, revoked bool) []TokenRow {
	var out []TokenRow
	for _, t := range rows {
		if !t.Revoked.IsZero() == revoked {
			out = append(out, t)
		}
	}
	return out
}

func revokedSummary(n int) string {
	if n == 1 {
		return "1 revoked token"
	}
	return strconv.Itoa(n) + " revoked tokens"
}

// NewSecret is a token or password shown once, right after it was made.
type NewSecret struct {
	// What it is, e.g. "API token ci" or "password of alice".
	What   string
	Secret string
}

// AdminProps fills the users and tokens page.
type AdminProps struct {
	Shell       Shell
	Users       []UserRow
	APITokens   []TokenRow
	AgentTokens []TokenRow
	Roles       []string
	// Secret, when set, is shown once at the top.
	Secret *NewSecret
	// Notice and Error report the last action.
	Notice string
	Error  string
	// AgentsOpen says agent endpoints accept any agent: no shared token
	// and no active agent token.
	AgentsOpen bool
}

// EventRow is one audit event.
type EventRow struct {
	ID     int64
	Time   time.Time
	Actor  string
	Action string
	Target string
	Remote string
	Detail string
	Diff   string
}

// AuditProps fills the audit log page.
type AuditProps struct {
	Shell   Shell
	Events  []EventRow
	Actor   string
	Action  string
	Actions []string
	// OlderURL links to the next (older) page; empty on the last page.
	OlderURL string
	// NewestURL links back to the first page; empty on it.
	NewestURL string
	Error     string
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func joinOr(s []string, empty string) string {
	if len(s) == 0 {
		return empty
	}
	out := s[0]
	for _, v := range s[1:] {
		out += ", " + v
	}
	return out
}
