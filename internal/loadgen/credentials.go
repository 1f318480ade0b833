package loadgen

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Credentials is an access key to sign requests with.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
}

// AnyCredentials are the credentials used when none are given: emulators
// that do not check signatures (moto, hsmsim with --auth any) accept them.
var AnyCredentials = Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}

// LoadCredentials reads profile's keys from an AWS shared credentials file
// ("[name]" or "[profile name]" sections of key = value lines). Its errors
// never quote a secret.
func LoadCredentials(path, profile string) (Credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("loadgen: credentials: %w", err)
	}
	var (
		cur   string
		found bool
		c     Credentials
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
			continue
		case line[0] == '[':
			cur = strings.TrimSpace(strings.TrimPrefix(strings.Trim(line, "[]"), "profile "))
			found = found || cur == profile
			continue
		}
		if cur != profile {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "aws_access_key_id":
			c.AccessKeyID = strings.TrimSpace(value)
		case "aws_secret_access_key":
			c.SecretAccessKey = strings.TrimSpace(value)
		case "aws_session_token":
			c.SessionToken = strings.TrimSpace(value)
		}
	}
	if err := sc.Err(); err != nil {
		return Credentials{}, fmt.Errorf("loadgen: credentials %s: %w", path, err)
	}
	switch {
	case !found:
		return Credentials{}, fmt.Errorf("%w: %s has no profile %q", ErrConfig, path, profile)
	case c.AccessKeyID == "" || c.SecretAccessKey == "":
		return Credentials{}, fmt.Errorf("%w: profile %q of %s needs aws_access_key_id and aws_secret_access_key", ErrConfig, profile, path)
	}
	return c, nil
}
