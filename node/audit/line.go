package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// timeLayout is RFC 3339 in UTC with exactly nine fractional digits, so that every line's
// time has the same width and sorts as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// zeroHash is the prev of the first line.
var zeroHash = hex.EncodeToString(make([]byte, sha256.Size))

// line is one audit line. Its field order is the canonical member order (see doc.go).
type line struct {
	Seq        uint64            `json:"seq"`
	Time       string            `json:"time"`
	Event      string            `json:"event"`
	Actor      string            `json:"actor"`
	SessionHSM string            `json:"session_hsm"`
	Outcome    Outcome           `json:"outcome"`
	Fields     map[string]string `json:"fields"`
	Prev       string            `json:"prev"`
	Hash       string            `json:"hash"`
}

// canonical returns l's canonical encoding (see doc.go) without a trailing newline.
// encoding/json sorts map keys and writes struct fields in declaration order.
func (l *line) canonical() ([]byte, error) {
	c := *l
	if c.Fields == nil {
		c.Fields = map[string]string{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&c); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// seal sets l.Hash and returns the line's bytes without the newline.
func (l *line) seal() ([]byte, error) {
	l.Hash = ""
	pre, err := l.canonical()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pre)
	l.Hash = hex.EncodeToString(sum[:])
	return l.canonical()
}

// hashOf returns the hex SHA-256 of b, the prev of the line after b.
func hashOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// parseLine decodes raw (one line without its newline) and checks that it is self-consistent:
// valid JSON with exactly the known members, well-formed values, byte-for-byte canonical, and
// carrying its own hash. It does not check seq or prev against the previous line.
func parseLine(raw []byte) (*line, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, errors.New("not a JSON audit record")
	}
	if dec.More() {
		return nil, errors.New("trailing data after the record")
	}
	if l.Seq == 0 {
		return nil, errors.New("seq is 0")
	}
	if _, err := time.Parse(timeLayout, l.Time); err != nil {
		return nil, errors.New("time is not RFC 3339 UTC with nine fractional digits")
	}
	if !snakeCase(l.Event) {
		return nil, errors.New("event is not snake_case")
	}
	if !l.Outcome.valid() {
		return nil, errors.New("unknown outcome")
	}
	if !isHexHash(l.Prev) || !isHexHash(l.Hash) {
		return nil, errors.New("prev or hash is not 64 lowercase hex digits")
	}
	want := l.Hash
	check := l
	enc, err := check.seal()
	if err != nil {
		return nil, fmt.Errorf("cannot re-encode: %w", err)
	}
	if check.Hash != want {
		return nil, errors.New("hash mismatch")
	}
	if !bytes.Equal(enc, raw) {
		return nil, errors.New("not in canonical form")
	}
	return &l, nil
}

// isHexHash reports whether s is 64 lowercase hex digits.
func isHexHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
