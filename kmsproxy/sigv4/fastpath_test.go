package sigv4

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// randomRequest builds a request with a random mix of what the fast path
// must get exactly right (header case and order, repeated and absent
// headers, spaces in values, ports, empty bodies) and of what it must
// leave to resign (other paths, queries, ignored headers, odd names).
func randomRequest(rng *rand.Rand) (*http.Request, []byte, authorization, time.Time) {
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	path := "/"
	if rng.IntN(10) == 0 {
		path = pick("/x", "/?a=b", "/a%20b", "//")
	}
	host := pick("127.0.0.1:4599", "localhost", "kms.us-east-1.amazonaws.com:443", "example.com:80", "[::1]:80", "[::1]:4599", "h  with  spaces")
	r := httptest.NewRequest(pick(http.MethodPost, http.MethodPost, http.MethodGet), "http://x"+path, nil)
	r.Host = host
	if rng.IntN(4) == 0 {
		r.TLS = &tls.ConnectionState{}
	}
	values := []string{"application/x-amz-json-1.1", "TrentService.Encrypt", "  lead and trail  ", "in  ner   spaces", "tab\tinside", "", "a,b", " \t "}
	names := []string{"Content-Type", "X-Amz-Target", "X-Amz-Security-Token", "Amz-Sdk-Invocation-Id", "Amz-Sdk-Request", "X-Custom-Header", "User-Agent", "X-Amzn-Trace-Id", "Content-Length"}
	for _, n := range names {
		for range rng.IntN(3) {
			r.Header.Add(n, values[rng.IntN(len(values))])
		}
	}
	amzDate := time.Date(2025, 1+time.Month(rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), 0, time.UTC)
	r.Header.Set("X-Amz-Date", amzDate.Format(timeFormat))
	if rng.IntN(8) == 0 {
		r.Header.Add("X-Amz-Date", "20200101T000000Z")
	}
	var body []byte
	if rng.IntN(3) > 0 {
		body = make([]byte, rng.IntN(300))
		for i := range body {
			body[i] = byte('a' + rng.IntN(26))
		}
	}
	var signed []string
	for _, n := range append(names, "host", "x-amz-date", "content-length", "x-absent", "") {
		if rng.IntN(2) == 0 || (ignoredHeaders[strings.ToLower(n)] && rng.IntN(10) > 0) {
			continue
		}
		switch rng.IntN(4) {
		case 0:
			n = strings.ToUpper(n)
		case 1:
			n = " " + strings.ToLower(n) + " "
		default:
			n = strings.ToLower(n)
		}
		signed = append(signed, n)
		if rng.IntN(10) == 0 {
			signed = append(signed, n) // repeated
		}
	}
	rng.Shuffle(len(signed), func(i, j int) { signed[i], signed[j] = signed[j], signed[i] })
	auth := authorization{accessKeyID: "AKIAFAST", date: amzDate.Format("20060102"), region: pick("us-east-1", "eu-west-3"),
		service: pick("kms", "cloudhsm"), terminator: "aws4_request", signedHeaders: strings.Join(signed, ";")}
	return r, body, auth, amzDate
}

// TestFastPathMatchesSDKSigner checks that the fast path, whenever it
// takes a request, computes the very signature the SDK signer gives
// resign's copy of it, and that it takes the requests SDKs send.
func TestFastPathMatchesSDKSigner(t *testing.T) {
	v := New(nil, false, nil)
	cred := Credential{AccessKeyID: "AKIAFAST", SecretAccessKey: "fast-path-secret-000000000000000000000000"}
	rng := rand.New(rand.NewPCG(1, 2))
	taken := 0
	const n = 5000
	for i := range n {
		r, body, auth, at := randomRequest(rng)
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		slow, err := v.resign(r, body, hash, auth, cred, at)
		require.NoError(t, err)
		fast, ok := v.fastSignature(r, len(body), hash, auth, cred, at)
		if !ok {
			continue
		}
		taken++
		require.Equal(t, slow, fast, "request %d: %s %s host %q headers %v signed %q body %d bytes",
			i, r.Method, r.URL, r.Host, r.Header, auth.signedHeaders, len(body))
	}
	t.Logf("the fast path took %d of %d requests", taken, n)
	require.Greater(t, taken, n/4, "the fast path took too few requests")
}

// TestFastPathDeclines lists the requests the fast path leaves to resign.
func TestFastPathDeclines(t *testing.T) {
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	base := func(url string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, url, nil)
		r.Header.Set("X-Amz-Date", at.Format(timeFormat))
		r.Header.Set("User-Agent", "test")
		return r
	}
	auth := authorization{date: "20250314", region: "us-east-1", service: "kms", signedHeaders: "host;x-amz-date"}
	tests := []struct {
		name   string
		r      *http.Request
		signed string
	}{
		{"another path", base("http://h/x"), "host;x-amz-date"},
		{"a query", base("http://h/?a=b"), "host;x-amz-date"},
		{"an ignored header signed", base("http://h/"), "host;user-agent;x-amz-date"},
		{"a header name with an underscore", base("http://h/"), "host;x_amz;x-amz-date"},
	}
	v := New(nil, false, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := auth
			a.signedHeaders = tt.signed
			_, ok := v.fastSignature(tt.r, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", a, Credential{}, at)
			require.False(t, ok)
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	cred := Credential{AccessKeyID: "AKIAFAST", SecretAccessKey: "fast-path-secret-000000000000000000000000"}
	at := time.Now().UTC()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4599/", nil)
	r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	r.Header.Set("X-Amz-Target", "TrentService.Encrypt")
	r.Header.Set("Amz-Sdk-Invocation-Id", "3b6c8b1a-5b0a-4a65-9d6a-3f0f3f6d8a11")
	r.Header.Set("Amz-Sdk-Request", "attempt=1; max=1")
	r.Header.Set("X-Amz-Date", at.Format(timeFormat))
	body := []byte(`{"KeyId":"6f3bd1a4-93b3-4c6e-9b1e-b5b1c0b8a0f1","Plaintext":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw=="}`)
	auth := authorization{accessKeyID: cred.AccessKeyID, date: at.Format("20060102"), region: "us-east-1", service: "kms", terminator: "aws4_request",
		signedHeaders: "amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date;x-amz-target"}
	v := New([]Credential{cred}, false, nil)
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	sig, err := v.resign(r, body, hash, auth, cred, at)
	if err != nil {
		b.Fatal(err)
	}
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+cred.AccessKeyID+"/"+auth.date+"/us-east-1/kms/aws4_request, SignedHeaders="+auth.signedHeaders+", Signature="+sig)
	b.Run("sdk-resign", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.resign(r, body, hash, auth, cred, at); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("fast-path", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := v.fastSignature(r, len(body), hash, auth, cred, at); !ok {
				b.Fatal("fast path declined")
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := v.Verify(r, body, "kms"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
