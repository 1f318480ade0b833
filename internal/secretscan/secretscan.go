// Package secretscan looks for secrets in bytes and files, in the forms
// they could take there: raw, hex and base64. The no-plaintext-on-disk
// tests (DESIGN.md invariant 1) of the HSM node and of the KMS endpoint
// use it.
package secretscan

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Pattern is one encoding of one secret.
type Pattern struct {
	// Name says which secret, in which form.
	Name string
	// Bytes are what to look for.
	Bytes []byte
}

// Patterns returns the forms secret could take in a file: its raw bytes,
// lower- and upper-case hex, and base64 in both alphabets. A base64
// encoding depends on where the secret starts in the encoded stream modulo
// 3, so for each of the three alignments Patterns gives the encoding of the
// whole 3-byte groups, which occurs in any base64 text (padded or raw)
// containing the secret at that alignment.
func Patterns(name string, secret []byte) []Pattern {
	out := []Pattern{
		{name + " raw", secret},
		{name + " hex", []byte(hex.EncodeToString(secret))},
		{name + " HEX", []byte(strings.ToUpper(hex.EncodeToString(secret)))},
	}
	for skip := range 3 {
		whole := secret[skip:]
		whole = whole[:len(whole)/3*3]
		out = append(out,
			Pattern{fmt.Sprintf("%s base64 (offset %d)", name, skip), []byte(base64.RawStdEncoding.EncodeToString(whole))},
			Pattern{fmt.Sprintf("%s base64url (offset %d)", name, skip), []byte(base64.RawURLEncoding.EncodeToString(whole))})
	}
	return out
}

// Find returns the names of the patterns data contains.
func Find(data []byte, patterns []Pattern) []string {
	var found []string
	for _, p := range patterns {
		if bytes.Contains(data, p.Bytes) {
			found = append(found, p.Name)
		}
	}
	return found
}

// Dir scans every file under dir. It returns the files it read, relative
// to dir, and, by path, the names of the patterns found in each file that
// holds any.
func Dir(dir string, patterns []Pattern) (scanned []string, found map[string][]string, err error) {
	found = map[string][]string{}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		scanned = append(scanned, rel)
		if f := Find(data, patterns); len(f) > 0 {
			found[path] = f
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("secretscan: %w", err)
	}
	return scanned, found, nil
}
