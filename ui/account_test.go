package ui

import (
	"net/http"
	"testing"
)

func TestHeaderAccountLinks(t *testing.T) {
	tests := []struct {
		name       string
		opts       []Option
		wantUser   bool
		wantAdmin  bool
		wantLogout string // csrf token in the sign-out form
	}{
		{name: "auth off", opts: nil},
		{name: "viewer", opts: []Option{WithUser(func(*http.Request) string { return "vera" }), WithCSRFToken(func(*http.Request) string { return "tok-1" })}, wantUser: true, wantLogout: "tok-1"},
		{name: "admin", opts: []Option{WithUser(func(*http.Request) string { return "root" }), WithAdmin(func(*http.Request) bool { return true }), WithCSRFToken(func(*http.Request) string { return "tok-2" })}, wantUser: true, wantAdmin: true, wantLogout: "tok-2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := get(t, newTestHandler(newFakeSource(), tt.opts...), "/")
			if got := r.doc.Find(testid("nav-audit")).Length() == 1; got != tt.wantUser {
				t.Errorf("audit link: got %v, want %v", got, tt.wantUser)
			}
			if got := r.doc.Find(testid("nav-admin")).Length() == 1; got != tt.wantAdmin {
				t.Errorf("admin link: got %v, want %v", got, tt.wantAdmin)
			}
			form := r.doc.Find(testid("logout-form"))
			if tt.wantLogout == "" {
				if form.Length() != 0 {
					t.Error("sign-out form shown without a user")
				}
				return
			}
			if method, _ := form.Attr("method"); method != "post" {
				t.Errorf("sign-out form method: got %q, want post", method)
			}
			if tok, _ := form.Find(`input[name="csrf_token"]`).Attr("value"); tok != tt.wantLogout {
				t.Errorf("sign-out csrf token: got %q, want %q", tok, tt.wantLogout)
			}
		})
	}
}
