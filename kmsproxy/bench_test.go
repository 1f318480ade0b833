package kmsproxy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/hsmsim/hsmsim/internal/cputime"
	"github.com/hsmsim/hsmsim/kmsproxy"
	"github.com/hsmsim/hsmsim/kmsproxy/awsjson"
	"github.com/hsmsim/hsmsim/kmsproxy/sigv4"
)

// Encrypt's shapes, as kmsproxy/kms declares them.
type benchEncryptInput struct {
	KeyID               *string           `json:"KeyId"`
	Plaintext           []byte            `json:"Plaintext"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	GrantTokens         []string          `json:"GrantTokens"`
	EncryptionAlgorithm *string           `json:"EncryptionAlgorithm"`
	DryRun              *bool             `json:"DryRun"`
}

type benchEncryptOutput struct {
	CiphertextBlob      []byte `json:"CiphertextBlob"`
	KeyID               string `json:"KeyId"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
}

// discardWriter is a ResponseWriter that keeps nothing but the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(code int)        { w.status = code }

// BenchmarkServeEncrypt measures the endpoint's own work for one Encrypt
// of 64 bytes, without the network and without KMS: routing, reading the
// body, SigV4 verification, decoding the input strictly, encoding the
// output. The operation is a stub that returns a blob of the real size.
// sigv4 verifies the signature; any-credentials skips it, as --auth any.
func BenchmarkServeEncrypt(b *testing.B) {
	blob := make([]byte, 1+16+4+12+64+16)
	arn := "arn:aws:kms:eu-west-3:123456789012:key/6f3bd1a4-93b3-4c6e-9b1e-b5b1c0b8a0f1"
	mux := awsjson.NewMux(awsjson.KMS)
	mux.Handle("Encrypt", func(_ context.Context, r *awsjson.Request) (any, error) {
		var in benchEncryptInput
		if err := r.Decode(&in); err != nil {
			return nil, err
		}
		return benchEncryptOutput{CiphertextBlob: blob, KeyID: arn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT"}, nil
	})
	body := []byte(`{"KeyId":"6f3bd1a4-93b3-4c6e-9b1e-b5b1c0b8a0f1","Plaintext":"` +
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+Pw==" + `"}`)
	for _, anyCreds := range []bool{false, true} {
		name := "sigv4"
		if anyCreds {
			name = "any-credentials"
		}
		b.Run(name, func(b *testing.B) {
			srv, err := kmsproxy.New(kmsproxy.Config{
				Credentials:    []sigv4.Credential{{AccessKeyID: accessKey, SecretAccessKey: secretKey}},
				AnyCredentials: anyCreds,
				Services:       []kmsproxy.Service{&fakeService{mux: mux}},
			})
			if err != nil {
				b.Fatal(err)
			}
			h := srv.Handler()
			r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4599/", bytes.NewReader(body))
			r.Header.Set("Content-Type", awsjson.ContentType)
			r.Header.Set("X-Amz-Target", "TrentService.Encrypt")
			r.Header.Set("User-Agent", "aws-sdk-go-v2/1.47.7 os/linux lang/go#1.26 md/GOOS#linux api/kms#1.62.4")
			r.Header.Set("Amz-Sdk-Invocation-Id", "3b6c8b1a-5b0a-4a65-9d6a-3f0f3f6d8a11")
			r.Header.Set("Amz-Sdk-Request", "attempt=1; max=1")
			r.ContentLength = int64(len(body))
			sum := sha256.Sum256(body)
			creds := aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey}
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "kms", region, time.Now()); err != nil {
				b.Fatal(err)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			cpu0 := cputime.Self()
			for b.Loop() {
				r.Body = io.NopCloser(bytes.NewReader(body))
				clear(w.h)
				w.status = 0
				h.ServeHTTP(w, r)
				if w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
			b.ReportMetric(float64(cputime.Self()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
