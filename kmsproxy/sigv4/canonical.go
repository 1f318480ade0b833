package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// The fast path computes, for the requests every AWS SDK sends to a JSON
// protocol service (POST /, no query string), exactly the signature the
// SDK signer produces when resign hands it the same request, without
// building a request and its header maps: the canonical request goes into
// one buffer and the signing key is derived once per access key, day,
// region and service. Any request outside that shape goes to resign. A
// differential test (fastpath_test.go) checks the two against each other
// on thousands of generated requests.

// ignoredHeaders are the headers the SDK signer never signs
// (aws/signer/internal/v4 IgnoredHeaders), lower case.
var ignoredHeaders = map[string]bool{
	"authorization": true, "user-agent": true, "x-amzn-trace-id": true, "expect": true, "transfer-encoding": true,
}

// canonicalKeys are the canonical forms of the headers SDKs sign, so that
// looking them up does not allocate.
var canonicalKeys = map[string]string{
	"content-type":          "Content-Type",
	"x-amz-target":          "X-Amz-Target",
	"x-amz-security-token":  "X-Amz-Security-Token",
	"x-amz-content-sha256":  "X-Amz-Content-Sha256",
	"x-amz-user-agent":      "X-Amz-User-Agent",
	"amz-sdk-invocation-id": "Amz-Sdk-Invocation-Id",
	"amz-sdk-request":       "Amz-Sdk-Request",
	"x-amz-api-version":     "X-Amz-Api-Version",
	"accept-encoding":       "Accept-Encoding",
}

func canonicalKey(lower string) string {
	if k, ok := canonicalKeys[lower]; ok {
		return k
	}
	return http.CanonicalHeaderKey(lower)
}

// maxFastHeaders bounds the headers of a request the fast path takes.
const maxFastHeaders = 24

// canonicalRequest appends to buf the canonical request the SDK signer
// builds from resign's copy of r, and reports whether r has the shape the
// fast path handles.
func canonicalRequest(buf []byte, r *http.Request, bodyLen int, payloadHash string, auth authorization, signedAt time.Time) ([]byte, bool) {
	if r.URL == nil || r.URL.Path != "/" || r.URL.RawPath != "" || r.URL.RawQuery != "" || r.URL.Opaque != "" || r.URL.ForceQuery {
		return nil, false
	}
	var names [maxFastHeaders]string
	list := append(names[:0], "host", "x-amz-date")
	for rest := auth.signedHeaders; rest != ""; {
		var name string
		name, rest, _ = strings.Cut(rest, ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if !lowerToken(name) {
			if name == "" {
				continue
			}
			return nil, false
		}
		switch {
		case name == "host" || name == "x-amz-date":
			continue
		case name == "content-length":
			if bodyLen == 0 {
				continue
			}
		case ignoredHeaders[name]:
			return nil, false
		case len(r.Header[canonicalKey(name)]) == 0:
			continue // resign's copy lacks it, so the SDK does not sign it.
		}
		if slices.Contains(list, name) {
			continue
		}
		if len(list) == maxFastHeaders {
			return nil, false
		}
		list = append(list, name)
	}
	slices.Sort(list)

	buf = append(buf, r.Method...)
	buf = append(buf, "\n/\n\n"...)
	for _, name := range list {
		buf = append(buf, name...)
		buf = append(buf, ':')
		switch name {
		case "host":
			buf = appendStripped(buf, signingHost(r))
		case "x-amz-date":
			buf = signedAt.UTC().AppendFormat(buf, timeFormat)
		case "content-length":
			buf = appendInt(buf, bodyLen)
		default:
			for i, v := range r.Header[canonicalKey(name)] {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = append(buf, strings.TrimSpace(stripExcessSpaces(v))...)
			}
		}
		buf = append(buf, '\n')
	}
	buf = append(buf, '\n')
	for i, name := range list {
		if i > 0 {
			buf = append(buf, ';')
		}
		buf = append(buf, name...)
	}
	buf = append(buf, '\n')
	buf = append(buf, payloadHash...)
	return buf, true
}

// lowerToken reports whether s is a non-empty header name in lower case
// letters, digits and dashes.
func lowerToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func appendInt(buf []byte, n int) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		if n /= 10; n == 0 {
			break
		}
	}
	return append(buf, d[i:]...)
}

// signingHost is the host the SDK signer signs for resign's copy of r: the
// Host header, without a port that is the scheme's default.
func signingHost(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if port := portOnly(host); port != "" && ((scheme == "http" && port == "80") || (scheme == "https" && port == "443")) {
		if stripped := stripPort(host); stripped != "" {
			return stripped
		}
	}
	return host
}

// portOnly and stripPort are the SDK signer's (aws/signer/internal/v4,
// copied from Go 1.8's net/url).
func portOnly(hostport string) string {
	colon := strings.IndexByte(hostport, ':')
	if colon == -1 {
		return ""
	}
	if i := strings.Index(hostport, "]:"); i != -1 {
		return hostport[i+len("]:"):]
	}
	if strings.Contains(hostport, "]") {
		return ""
	}
	return hostport[colon+len(":"):]
}

func stripPort(hostport string) string {
	colon := strings.IndexByte(hostport, ':')
	if colon == -1 {
		return hostport
	}
	if i := strings.IndexByte(hostport, ']'); i != -1 {
		return strings.TrimPrefix(hostport[:i], "[")
	}
	return hostport[:colon]
}

// stripExcessSpaces trims leading and trailing spaces and collapses runs
// of spaces into one, as the SDK signer does (spaces only, not tabs).
func stripExcessSpaces(s string) string {
	s = strings.Trim(s, " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' && i > 0 && s[i-1] == ' ' {
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func appendStripped(buf []byte, s string) []byte { return append(buf, stripExcessSpaces(s)...) }

// keyCacheSize bounds the derived signing keys kept.
const keyCacheSize = 256

type keyCacheKey struct {
	accessKeyID, date, region, service string
}

// keyCache holds derived signing keys: one per access key, day, region
// and service, as SigV4 intends (the key only changes daily).
type keyCache struct {
	mu   sync.RWMutex
	keys map[keyCacheKey][]byte
}

// signingKey returns HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region),
// service), "aws4_request").
func (c *keyCache) signingKey(cred Credential, date, region, service string) []byte {
	k := keyCacheKey{cred.AccessKeyID, date, region, service}
	c.mu.RLock()
	key, ok := c.keys[k]
	c.mu.RUnlock()
	if ok {
		return key
	}
	key = hmacSHA256([]byte("AWS4"+cred.SecretAccessKey), date)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, service)
	key = hmacSHA256(key, "aws4_request")
	c.mu.Lock()
	if c.keys == nil || len(c.keys) >= keyCacheSize {
		c.keys = make(map[keyCacheKey][]byte)
	}
	c.keys[k] = key
	c.mu.Unlock()
	return key
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// signState is the per-request scratch of the fast path.
type signState struct {
	buf []byte
	sum [sha256.Size]byte
	hex [2 * sha256.Size]byte
	sha hash.Hash
}

var signStates = sync.Pool{New: func() any { return &signState{buf: make([]byte, 0, 1024), sha: sha256.New()} }}

// fastSignature returns the signature the SDK signer would give r, and
// false when r is not of the shape the fast path handles.
func (v *Verifier) fastSignature(r *http.Request, bodyLen int, payloadHash string, auth authorization, cred Credential, signedAt time.Time) (string, bool) {
	st := signStates.Get().(*signState)
	defer signStates.Put(st)
	canonical, ok := canonicalRequest(st.buf[:0], r, bodyLen, payloadHash, auth, signedAt)
	if !ok {
		return "", false
	}
	st.buf = canonical[:0]
	st.sha.Reset()
	st.sha.Write(canonical)
	hex.Encode(st.hex[:], st.sha.Sum(st.sum[:0]))
	// The string to sign: algorithm, time, scope, hash of the canonical
	// request. The scope's date is the request's own: checkScope made
	// sure it is X-Amz-Date's day.
	sts := append(st.buf[:0], Algorithm+"\n"...)
	sts = signedAt.UTC().AppendFormat(sts, timeFormat)
	sts = append(sts, '\n')
	sts = append(sts, auth.date...)
	sts = append(sts, '/')
	sts = append(sts, auth.region...)
	sts = append(sts, '/')
	sts = append(sts, auth.service...)
	sts = append(sts, "/aws4_request\n"...)
	sts = append(sts, st.hex[:]...)
	st.buf = sts[:0]
	m := hmac.New(sha256.New, v.keys.signingKey(cred, auth.date, auth.region, auth.service))
	m.Write(sts)
	return hex.EncodeToString(m.Sum(st.sum[:0])), true
}
