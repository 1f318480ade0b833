package loadgen

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Op is a workload: one KMS operation, or a mix of them.
type Op string

// The workloads.
const (
	// OpEncrypt is Encrypt of PayloadBytes random bytes.
	OpEncrypt Op = "encrypt"
	// OpDecrypt is Decrypt of a blob encrypted once before the run.
	OpDecrypt Op = "decrypt"
	// OpGenerateDataKey is GenerateDataKey with KeySpec AES_256.
	OpGenerateDataKey Op = "generate-data-key"
	// OpReEncrypt is ReEncrypt of a blob encrypted before the run, to the
	// same key.
	OpReEncrypt Op = "re-encrypt"
	// OpCreateKey is CreateKey of a symmetric key (in CustomKeyStoreID
	// when set).
	OpCreateKey Op = "create-key"
	// OpMix cycles through Encrypt, Decrypt, GenerateDataKey and
	// ReEncrypt, each worker from a different one.
	OpMix Op = "mix"
)

// Ops lists every workload, in the order the help text gives them.
var Ops = []Op{OpEncrypt, OpDecrypt, OpGenerateDataKey, OpReEncrypt, OpCreateKey, OpMix}

// mixOps are the operations OpMix cycles through.
var mixOps = []Op{OpEncrypt, OpDecrypt, OpGenerateDataKey, OpReEncrypt}

// ParseOp returns the Op named s.
func ParseOp(s string) (Op, error) {
	op := Op(s)
	if !slices.Contains(Ops, op) {
		names := make([]string, len(Ops))
		for i, o := range Ops {
			names[i] = string(o)
		}
		return "", fmt.Errorf("%w: unknown operation %q (want %s)", ErrConfig, s, strings.Join(names, ", "))
	}
	return op, nil
}

// apiName is the KMS operation's name, as in X-Amz-Target.
func (o Op) apiName() string {
	switch o {
	case OpEncrypt:
		return "Encrypt"
	case OpDecrypt:
		return "Decrypt"
	case OpGenerateDataKey:
		return "GenerateDataKey"
	case OpReEncrypt:
		return "ReEncrypt"
	case OpCreateKey:
		return "CreateKey"
	}
	return ""
}

// needsKey reports whether the workload uses a KMS key.
func (o Op) needsKey() bool { return o != OpCreateKey }

// needsBlob reports whether the workload decrypts a blob made before the run.
func (o Op) needsBlob() bool { return o == OpDecrypt || o == OpReEncrypt || o == OpMix }

// cycle is the sequence of operations a worker repeats.
func (o Op) cycle() []Op {
	if o == OpMix {
		return mixOps
	}
	return []Op{o}
}

// fixture is what a target's requests carry, prepared before the run.
type fixture struct {
	keyID            string
	customKeyStoreID string
	plaintext        []byte
	blob             []byte
}

// requestBody is op's JSON request body. Every request of a run sends the
// same body: nothing in it needs to change between calls.
func (f *fixture) requestBody(op Op) ([]byte, error) {
	var body any
	switch op {
	case OpEncrypt:
		body = struct {
			KeyID     string `json:"KeyId"`
			Plaintext []byte `json:"Plaintext"`
		}{f.keyID, f.plaintext}
	case OpDecrypt:
		body = struct {
			CiphertextBlob []byte `json:"CiphertextBlob"`
		}{f.blob}
	case OpGenerateDataKey:
		body = struct {
			KeyID   string `json:"KeyId"`
			KeySpec string `json:"KeySpec"`
		}{f.keyID, "AES_256"}
	case OpReEncrypt:
		body = struct {
			CiphertextBlob   []byte `json:"CiphertextBlob"`
			DestinationKeyID string `json:"DestinationKeyId"`
		}{f.blob, f.keyID}
	case OpCreateKey:
		in := createKeyBody{Description: createKeyDescription}
		if f.customKeyStoreID != "" {
			in.CustomKeyStoreID, in.Origin = f.customKeyStoreID, "AWS_CLOUDHSM"
		}
		body = in
	default:
		return nil, fmt.Errorf("%w: no request for %q", ErrConfig, op)
	}
	return json.Marshal(body)
}

// createKeyDescription is the description of every key the tool creates.
const createKeyDescription = "hsmctl bench"

type createKeyBody struct {
	Description      string `json:"Description"`
	CustomKeyStoreID string `json:"CustomKeyStoreId,omitempty"`
	Origin           string `json:"Origin,omitempty"`
}
