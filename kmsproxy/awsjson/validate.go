package awsjson

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
)

// Validator collects constraint violations and reports them as AWS does:
// "2 validation errors detected: Value 'x' at 'keyId' failed to satisfy
// constraint: Member must have length less than or equal to 2048; ...".
// Member names are camelCased, as in AWS's messages.
type Validator struct {
	errs []string
}

func (v *Validator) add(value any, member, constraint string) {
	shown := "null"
	switch x := value.(type) {
	case nil:
	case string:
		shown = "'" + x + "'"
	case *string:
		if x != nil {
			shown = "'" + *x + "'"
		}
	case sensitive:
		shown = "'***'"
	default:
		shown = fmt.Sprintf("'%v'", x)
	}
	v.errs = append(v.errs, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: %s", shown, camel(member), constraint))
}

// sensitive marks a value AWS does not echo (passwords, plaintext).
type sensitive struct{}

// Required checks that a member is present.
func (v *Validator) Required(member string, present bool) {
	if !present {
		v.add(nil, member, "Member must not be null")
	}
}

// Length checks a string's length in [min, max] when it is set.
func (v *Validator) Length(member string, s *string, min, max int) {
	if s == nil {
		return
	}
	n := len([]rune(*s))
	switch {
	case n < min:
		v.add(*s, member, fmt.Sprintf("Member must have length greater than or equal to %d", min))
	case n > max:
		v.add(truncate(*s), member, fmt.Sprintf("Member must have length less than or equal to %d", max))
	}
}

// SecretLength is Length for a sensitive string, which is never echoed.
func (v *Validator) SecretLength(member string, s *string, min, max int) {
	if s == nil {
		return
	}
	n := len([]rune(*s))
	switch {
	case n < min:
		v.add(sensitive{}, member, fmt.Sprintf("Member must have length greater than or equal to %d", min))
	case n > max:
		v.add(sensitive{}, member, fmt.Sprintf("Member must have length less than or equal to %d", max))
	}
}

// BlobLength checks a blob's decoded length in [min, max] when it is set.
// Blobs are sensitive: their bytes are never echoed.
func (v *Validator) BlobLength(member string, b []byte, set bool, min, max int) {
	if !set {
		return
	}
	switch {
	case len(b) < min:
		v.add(sensitive{}, member, fmt.Sprintf("Member must have length greater than or equal to %d", min))
	case len(b) > max:
		v.add(sensitive{}, member, fmt.Sprintf("Member must have length less than or equal to %d", max))
	}
}

// Range checks an integer in [min, max] when it is set.
func (v *Validator) Range(member string, n *int64, min, max int64) {
	if n == nil {
		return
	}
	switch {
	case *n < min:
		v.add(*n, member, fmt.Sprintf("Member must have value greater than or equal to %d", min))
	case *n > max:
		v.add(*n, member, fmt.Sprintf("Member must have value less than or equal to %d", max))
	}
}

// Pattern checks a string against re when it is set.
func (v *Validator) Pattern(member string, s *string, re *regexp.Regexp) {
	if s != nil && !re.MatchString(*s) {
		v.add(truncate(*s), member, "Member must satisfy regular expression pattern: "+re.String())
	}
}

// Enum checks a string is one of allowed when it is set.
func (v *Validator) Enum(member string, s *string, allowed ...string) {
	if s == nil {
		return
	}
	for _, a := range allowed {
		if *s == a {
			return
		}
	}
	v.add(*s, member, "Member must satisfy enum value set: ["+strings.Join(allowed, ", ")+"]")
}

// Err returns the ValidationException for the violations, or nil.
func (v *Validator) Err() error {
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return Errorf("ValidationException", http.StatusBadRequest, "1 validation error detected: %s", v.errs[0])
	}
	return Errorf("ValidationException", http.StatusBadRequest, "%d validation errors detected: %s", len(v.errs), strings.Join(v.errs, "; "))
}

func camel(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

func truncate(s string) string {
	if len(s) > 256 {
		return s[:256] + "..."
	}
	return s
}
