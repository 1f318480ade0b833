package audit

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Event names recorded by the node. Record accepts any snake_case name; these are the ones
// the node uses, so that readers of the log can rely on them.
const (
	// EventLogin is a login attempt: outcome ok, denied (wrong password, locked user) or
	// failed.
	EventLogin = "login"
	// EventLogout is the end of a session at the client's request.
	EventLogout = "logout"

	// EventUserCreate is the creation of a user (fields: target_user, role).
	EventUserCreate = "user_create"
	// EventUserDelete is the deletion of a user (fields: target_user).
	EventUserDelete = "user_delete"
	// EventUserPasswordChange is a password change or an admin's reset (fields: target_user).
	EventUserPasswordChange = "user_password_change"
	// EventUserLock is a user locked after too many failed logins (fields: target_user).
	EventUserLock = "user_lock"

	// EventKeyCreate is the creation of a key by generation or unwrapping (fields: handle,
	// key_type, label).
	EventKeyCreate = "key_create"
	// EventKeyDelete is the deletion of a key (fields: handle).
	EventKeyDelete = "key_delete"
	// EventKeyShare is the sharing of a key with a user (fields: handle, target_user).
	EventKeyShare = "key_share"
	// EventKeyUnshare is the end of a key's sharing with a user (fields: handle, target_user).
	EventKeyUnshare = "key_unshare"
	// EventKeyAttributeChange is a change of a key's attributes (fields: handle, attribute).
	EventKeyAttributeChange = "key_attribute_change"

	// EventAuthorizationFailure is a request refused because the session's user may not do
	// it (fields: method, role); its outcome is denied.
	EventAuthorizationFailure = "authorization_failure"

	// EventClusterInit is the cluster's initialization with its signed certificate.
	EventClusterInit = "cluster_init"
	// EventClusterActivate is the cluster's activation (the first admin's password set).
	EventClusterActivate = "cluster_activate"

	// EventMemberAdd is the admission or addition of an HSM to the cluster (fields: node_id,
	// az).
	EventMemberAdd = "member_add"
	// EventMemberRemove is the removal of an HSM from the cluster (fields: node_id).
	EventMemberRemove = "member_remove"
)

// Outcome is how an audited operation ended.
type Outcome string

// The outcomes of an audited operation.
const (
	// OutcomeOK means the operation succeeded.
	OutcomeOK Outcome = "ok"
	// OutcomeDenied means authentication or authorization refused it.
	OutcomeDenied Outcome = "denied"
	// OutcomeFailed means it failed for another reason (invalid request, internal error).
	OutcomeFailed Outcome = "failed"
)

// valid reports whether o is one of the three outcomes.
func (o Outcome) valid() bool {
	return o == OutcomeOK || o == OutcomeDenied || o == OutcomeFailed
}

// Event is one thing to record. It must carry no secret: see the package comment, "Secrets".
type Event struct {
	// Name is the event's snake_case name, one of the Event* constants as a rule.
	Name string
	// Actor is the username that caused the event, "" when there is none.
	Actor string
	// SessionHSM is the id of the HSM whose session caused the event.
	SessionHSM string
	// Outcome is how the operation ended.
	Outcome Outcome
	// Fields are non-secret details (handle, target_user, role…). Record copies them.
	Fields map[string]string
}

// forbiddenFieldParts are the substrings of a field name that Record refuses, compared in
// lower case: a guard against secrets written by mistake, not a filter.
var forbiddenFieldParts = []string{"password", "key_material", "plaintext"}

// validate checks ev against the rules of the package comment.
func (ev Event) validate() error {
	if !snakeCase(ev.Name) {
		return fmt.Errorf("%w: event name %q is not snake_case", ErrInvalidEvent, ev.Name)
	}
	if !ev.Outcome.valid() {
		return fmt.Errorf("%w: outcome %q, want ok, denied or failed", ErrInvalidEvent, ev.Outcome)
	}
	if !utf8.ValidString(ev.Actor) || !utf8.ValidString(ev.SessionHSM) {
		return fmt.Errorf("%w: actor or session_hsm is not valid UTF-8", ErrInvalidEvent)
	}
	for k, v := range ev.Fields {
		lk := strings.ToLower(k)
		for _, bad := range forbiddenFieldParts {
			if strings.Contains(lk, bad) {
				// The value is not quoted: it may be the very secret the guard is for.
				return fmt.Errorf("%w: field name %q may carry a secret", ErrInvalidEvent, k)
			}
		}
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: field %q is not valid UTF-8", ErrInvalidEvent, k)
		}
	}
	return nil
}

// snakeCase reports whether s matches [a-z][a-z0-9_]*.
func snakeCase(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
