// Package wycheproof loads Project Wycheproof test vector files and keeps the
// score of a run over them, so that every primitive in cryptocore is checked
// against a suite nobody on this project wrote.
//
// The vectors live outside the repository, in ../shared/testdata/wycheproof
// beside the checkout, or wherever HSMSIM_WYCHEPROOF_DIR points. A checkout
// without them skips the Wycheproof tests with a clear message; a file that is
// present but runs no vector fails.
package wycheproof

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// EnvDir names the environment variable that overrides where the vectors are.
const EnvDir = "HSMSIM_WYCHEPROOF_DIR"

// Result is the outcome a vector expects.
type Result string

// The outcomes a vector can expect.
const (
	// Valid vectors must be accepted and produce exactly the expected output.
	Valid Result = "valid"
	// Invalid vectors must be rejected.
	Invalid Result = "invalid"
	// Acceptable vectors may go either way; the outcome is logged.
	Acceptable Result = "acceptable"
)

// Hex is a byte string written in hex in the vector files.
type Hex []byte

// UnmarshalJSON decodes a hex string.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return fmt.Errorf("wycheproof: bad hex %q: %w", s, err)
	}
	*h = d
	return nil
}

// Case holds the fields every test vector has.
type Case struct {
	TcID    int      `json:"tcId"`
	Comment string   `json:"comment"`
	Flags   []string `json:"flags"`
	Result  Result   `json:"result"`
}

// File is one vector file; G is the schema's test group type.
type File[G any] struct {
	Algorithm     string `json:"algorithm"`
	Schema        string `json:"schema"`
	NumberOfTests int    `json:"numberOfTests"`
	TestGroups    []G    `json:"testGroups"`
}

// Dir returns the directory holding the vectors, or skips t when it is absent.
func Dir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvDir)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			t.Skipf("wycheproof: cannot find the module root (%v); set %s", err, EnvDir)
		}
		dir = filepath.Join(root, "..", "shared", "testdata", "wycheproof")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("wycheproof: vectors not found at %s (set %s to their directory): %v", dir, EnvDir, err)
	}
	return dir
}

// Load decodes the named vector file into a File with group type G.
func Load[G any](t testing.TB, name string) File[G] {
	t.Helper()
	path := filepath.Join(Dir(t), name)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("wycheproof: %v", err)
	}
	var f File[G]
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("wycheproof: decode %s: %v", name, err)
	}
	return f
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Tally keeps the score of one file's run.
type Tally struct {
	t                                 testing.TB
	name                              string
	run, failed                       int
	acceptableAccepted, acceptableRej int
}

// NewTally starts the score for the named file.
func NewTally(t testing.TB, name string) *Tally {
	return &Tally{t: t, name: name}
}

// Record scores one vector: accepted reports whether the implementation
// accepted the input and produced the expected output; err, when not nil,
// is why it did not.
func (c *Tally) Record(tc Case, accepted bool, err error) {
	c.t.Helper()
	c.run++
	switch tc.Result {
	case Valid:
		if !accepted {
			c.failed++
			c.t.Errorf("wycheproof %s: tcId %d (%s, flags %v): valid vector rejected: %v", c.name, tc.TcID, tc.Comment, tc.Flags, err)
		}
	case Invalid:
		if accepted {
			c.failed++
			c.t.Errorf("wycheproof %s: tcId %d (%s, flags %v): invalid vector accepted", c.name, tc.TcID, tc.Comment, tc.Flags)
		}
	case Acceptable:
		if accepted {
			c.acceptableAccepted++
		} else {
			c.acceptableRej++
		}
	default:
		c.failed++
		c.t.Errorf("wycheproof %s: tcId %d: unknown result %q", c.name, tc.TcID, tc.Result)
	}
}

// Done logs the score as "wycheproof NAME: N run, M failed" and fails the
// test when no vector ran or when the count differs from the file's header.
func (c *Tally) Done(expected int) {
	c.t.Helper()
	c.t.Logf("wycheproof %s: %d run, %d failed", c.name, c.run, c.failed)
	if c.acceptableAccepted+c.acceptableRej > 0 {
		c.t.Logf("wycheproof %s: acceptable vectors: %d accepted, %d rejected", c.name, c.acceptableAccepted, c.acceptableRej)
	}
	if c.run == 0 {
		c.t.Errorf("wycheproof %s: no vector ran", c.name)
	}
	if expected > 0 && c.run != expected {
		c.t.Errorf("wycheproof %s: ran %d vectors, the file has %d", c.name, c.run, expected)
	}
}
