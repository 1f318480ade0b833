package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Canned identities of the floor's answers.
const (
	floorAccount   = "123456789012"
	floorKeyID     = "6f3bd1a4-93b3-4c6e-9b1e-b5b1c0b8a0f1"
	floorRequestID = "00000000-0000-4000-8000-000000000000"
	// blobOverhead is the size of an hsmsim ciphertext blob beyond its
	// plaintext: version, key id, material version, nonce and tag.
	blobOverhead = 1 + 16 + 4 + 12 + 16
)

// Floor is a no-op KMS endpoint on loopback: it answers every operation
// the tool sends with a canned, valid response of the size a real one
// would have, and does no other work. Benchmarked with the same client in
// the same run, it is the floor of what any endpoint can reach on the
// machine: the cost of the client, HTTP and the loopback.
type Floor struct {
	ln     net.Listener
	srv    *http.Server
	bodies map[string]cannedResponse
	served chan struct{}
}

// StartFloor starts a Floor on 127.0.0.1 with responses for plaintexts of
// payloadBytes bytes, in region.
func StartFloor(payloadBytes int, region string) (*Floor, error) {
	bodies, err := floorBodies(payloadBytes, region)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("loadgen: floor: %w", err)
	}
	f := &Floor{ln: ln, bodies: bodies, served: make(chan struct{})}
	f.srv = &http.Server{Handler: http.HandlerFunc(f.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(f.served)
		f.srv.Serve(ln)
	}()
	return f, nil
}

// URL is the Floor's endpoint, http://127.0.0.1:PORT.
func (f *Floor) URL() string { return "http://" + f.ln.Addr().String() }

// Close stops the Floor.
func (f *Floor) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := f.srv.Shutdown(ctx)
	if err != nil {
		f.srv.Close()
	}
	<-f.served
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

var (
	hdrContentType   = []string{"application/x-amz-json-1.1"}
	hdrRequestID     = []string{floorRequestID}
	hdrUnknownOpType = []string{"UnknownOperationException"}
)

// cannedResponse is a response body and its Content-Length header.
type cannedResponse struct {
	body   []byte
	length []string
}

func canned(body []byte) cannedResponse {
	return cannedResponse{body: body, length: []string{strconv.Itoa(len(body))}}
}

var unknownOperation = canned([]byte(`{"__type":"UnknownOperationException","message":"The floor answers only the operations hsmctl bench sends"}`))

func (f *Floor) serve(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	resp, ok := f.bodies[r.Header.Get("X-Amz-Target")]
	h := w.Header()
	h["Content-Type"] = hdrContentType
	h["X-Amzn-Requestid"] = hdrRequestID
	if !ok {
		h["Content-Length"] = unknownOperation.length
		h["X-Amzn-Errortype"] = hdrUnknownOpType
		w.WriteHeader(http.StatusBadRequest)
		w.Write(unknownOperation.body)
		return
	}
	h["Content-Length"] = resp.length
	w.Write(resp.body)
}

// floorBodies builds the canned response of every operation, by
// X-Amz-Target.
func floorBodies(payloadBytes int, region string) (map[string]cannedResponse, error) {
	arn := "arn:aws:kms:" + region + ":" + floorAccount + ":key/" + floorKeyID
	blob := make([]byte, blobOverhead+payloadBytes)
	blob[0] = 1
	dataKey := make([]byte, 32)
	dataKeyBlob := make([]byte, blobOverhead+len(dataKey))
	plaintext := make([]byte, payloadBytes)
	now := float64(time.Now().Unix())
	outputs := map[string]any{
		"Encrypt": map[string]any{"CiphertextBlob": blob, "KeyId": arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
		"Decrypt": map[string]any{"Plaintext": plaintext, "KeyId": arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"},
		"GenerateDataKey": map[string]any{
			"CiphertextBlob": dataKeyBlob, "Plaintext": dataKey, "KeyId": arn,
		},
		"ReEncrypt": map[string]any{
			"CiphertextBlob": blob, "SourceKeyId": arn, "KeyId": arn,
			"SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
		},
		"CreateKey": map[string]any{"KeyMetadata": map[string]any{
			"AWSAccountId": floorAccount, "KeyId": floorKeyID, "Arn": arn, "CreationDate": now,
			"Enabled": true, "Description": createKeyDescription, "KeyUsage": "ENCRYPT_DECRYPT", "KeyState": "Enabled",
			"Origin": "AWS_KMS", "KeyManager": "CUSTOMER", "CustomerMasterKeySpec": "SYMMETRIC_DEFAULT",
			"KeySpec": "SYMMETRIC_DEFAULT", "EncryptionAlgorithms": []string{"SYMMETRIC_DEFAULT"}, "MultiRegion": false,
		}},
	}
	bodies := make(map[string]cannedResponse, len(outputs))
	for op, out := range outputs {
		b, err := json.Marshal(out)
		if err != nil {
			return nil, fmt.Errorf("loadgen: floor %s: %w", op, err)
		}
		bodies["TrentService."+op] = canned(b)
	}
	return bodies, nil
}
