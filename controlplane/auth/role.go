package auth

import "fmt"

// Role is what a user or API token may do. Each role includes the ones
// below it: viewer < operator < admin.
type Role string

// Roles.
const (
	// RoleViewer reads everything: dashboard, API, audit log.
	RoleViewer Role = "viewer"
	// RoleOperator also changes and rolls back policies.
	RoleOperator Role = "operator"
	// RoleAdmin also manages users and tokens.
	RoleAdmin Role = "admin"
)

// Roles lists the roles from least to most powerful.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether r includes need. An unknown role allows nothing.
func (r Role) Allows(need Role) bool { return r.Valid() && r.rank() >= need.rank() }

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("%w: role %q: want viewer, operator or admin", ErrInvalid, s)
	}
	return r, nil
}
