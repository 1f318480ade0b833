package cloudhsm

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
)

// pattern is a botocore pattern. AWS matches the whole value against it and
// quotes the model's text in its message; model patterns are unanchored, so
// full anchors the match and model is what the message shows.
type pattern struct {
	model, full *regexp.Regexp
}

func newPattern(p string) pattern {
	return pattern{model: regexp.MustCompile(p), full: regexp.MustCompile(`^(?:` + p + `)$`)}
}

// The model's patterns.
var (
	clusterIDPattern  = newPattern(`cluster-[2-7a-zA-Z]{11,16}`)
	hsmIDPattern      = newPattern(`hsm-[2-7a-zA-Z]{11,16}`)
	backupIDPattern   = newPattern(`backup-[2-7a-zA-Z]{11,16}`)
	backupARNPattern  = newPattern(`^(arn:aws(-(us-gov))?:cloudhsm:([a-z]{2}(-(gov|isob|iso))?-(east|west|north|south|central){1,2}-[0-9]{1}):[0-9]{12}:backup/)?backup-[2-7a-zA-Z]{11,16}`)
	resourceIDPattern = newPattern(`(?:cluster|backup)-[2-7a-zA-Z]{11,16}`)
	subnetIDPattern   = newPattern(`subnet-[0-9a-fA-F]{8,17}`)
	eniIDPattern      = newPattern(`eni-[0-9a-fA-F]{8,17}`)
	ipPattern         = newPattern(`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`)
	azPattern         = newPattern(`[a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\d[a-z]`)
	hsmTypePattern    = newPattern(`((p|)hsm[0-9][a-z.]*\.[a-zA-Z]+)`)
	certPattern       = newPattern(`[a-zA-Z0-9+-/=\s]*`)
	retentionPattern  = newPattern(`[0-9]+`)
	tagPattern        = newPattern(`^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`)
	fieldPattern      = newPattern(`[a-zA-Z0-9_-]+`)
)

// checkPattern reports s (when set) unless it matches p in full.
func checkPattern(v *awsjson.Validator, member string, s *string, p pattern) {
	if s == nil || p.full.MatchString(*s) {
		return
	}
	if !p.model.MatchString(*s) {
		v.Pattern(member, s, p.model)
		return
	}
	// The value holds a match but is not one: show the anchored pattern,
	// which it fails.
	v.Pattern(member, s, p.full)
}

// checkListLength is AWS's length constraint on a list member, which
// awsjson.Validator has no method for. AWS shows the list as [a, b].
func checkListLength(member string, list []string, set bool, min, max int) error {
	if !set {
		return nil
	}
	var constraint string
	switch {
	case len(list) < min:
		constraint = fmt.Sprintf("Member must have length greater than or equal to %d", min)
	case len(list) > max:
		constraint = fmt.Sprintf("Member must have length less than or equal to %d", max)
	default:
		return nil
	}
	return awsjson.Errorf("ValidationException", http.StatusBadRequest,
		"1 validation error detected: Value '[%s]' at '%s' failed to satisfy constraint: %s", strings.Join(list, ", "), member, constraint)
}

// checkPaging validates MaxResults in [1, max] and NextToken's length.
func checkPaging(v *awsjson.Validator, maxResults *int64, max int64, nextToken *string) {
	v.Range("MaxResults", maxResults, 1, max)
	v.Length("NextToken", nextToken, 0, 256)
}

// checkFilters validates a Filters map: at most 30 names of the model's
// Field pattern.
func checkFilters(v *awsjson.Validator, filters map[string][]string) error {
	names := slices.Sorted(maps.Keys(filters))
	for _, name := range names {
		checkPattern(v, "Filters", &name, fieldPattern)
	}
	return checkListLength("filters", names, true, 0, 30)
}

// unknownFilters refuses filter names the operation does not know.
func unknownFilters(filters map[string][]string, known ...string) error {
	for name := range filters {
		ok := false
		for _, k := range known {
			ok = ok || name == k
		}
		if !ok {
			return invalidRequest("Invalid filter %s. Valid filters are %s.", name, strings.Join(known, ", "))
		}
	}
	return nil
}

// A page token is the offset of the page's first item, with the operation,
// in base64: opaque to the caller, checked on the way back.

func pageToken(op string, offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(op + ":" + strconv.Itoa(offset)))
}

// page returns the bounds of the page of n items that token and maxResults
// select (the first page for no token; all items for no maxResults) and the
// token of the next page, if any.
func page(op string, n int, token *string, maxResults *int64) (from, to int, next *string, err error) {
	if token != nil && *token != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(*token)
		rest, ok := strings.CutPrefix(string(raw), op+":")
		off, aerr := strconv.Atoi(rest)
		if derr != nil || !ok || aerr != nil || off < 0 {
			return 0, 0, nil, invalidRequest("The NextToken is not valid.")
		}
		from = min(off, n)
	}
	to = n
	if maxResults != nil && int64(n-from) > *maxResults {
		to = from + int(*maxResults)
		next = ptr(pageToken(op, to))
	}
	return from, to, next, nil
}
