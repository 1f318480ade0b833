package main

// Quorum authentication (M of N), as CloudHSM CLI's "quorum token-sign"
// commands. Each admin holds an ECDSA P-256 private key (create-key makes
// one) and registers its public half (register-key). While a service's
// quorum value M is above 1, its commands need a token: the requesting admin
// generates one and hands the token file to the approvers, each signs the
// token's challenge offline with its private key (sign, no HSM involved) and
// any admin session submits the signatures (approve). The command then names
// the token with --quorum-token-id, which uses it up.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// maxQuorumValue is the largest quorum value (M) an HSM accepts.
const maxQuorumValue = 8

// quorumServices are the quorum-controlled services.
var quorumServices = []string{"user", "quorum"}

// quorumToken is a token as hsmctl prints it and writes it to a token file.
type quorumToken struct {
	TokenID       string   `json:"token_id"`
	Service       string   `json:"service"`
	Requester     string   `json:"requester"`
	ExpiresAt     string   `json:"expires_at"`
	ExpiresAtUnix int64    `json:"expires_at_unix"`
	Challenge     []byte   `json:"challenge"` // base64 in JSON
	Approvers     []string `json:"approvers"`
}

func tokenFromAPI(t *hsmv1.QuorumToken) quorumToken {
	approvers := t.GetApprovers()
	if approvers == nil {
		approvers = []string{}
	}
	return quorumToken{TokenID: t.GetTokenId(), Service: t.GetService(), Requester: t.GetRequester(),
		ExpiresAt: time.Unix(t.GetExpiresAtUnix(), 0).UTC().Format(time.RFC3339), ExpiresAtUnix: t.GetExpiresAtUnix(),
		Challenge: t.GetChallenge(), Approvers: approvers}
}

// quorumSignature is one approver's signature of a token's challenge, as
// token-sign sign writes it and token-sign approve reads it.
type quorumSignature struct {
	TokenID   string `json:"token_id"`
	Approver  string `json:"approver"`
	Signature []byte `json:"signature"` // ASN.1 DER ECDSA over SHA-256(challenge); base64 in JSON
}

// quorumValueRow is one service's quorum value.
type quorumValueRow struct {
	Service string `json:"service"`
	Value   uint32 `json:"value"`
}

// quorumListing is what token-sign list prints.
type quorumListing struct {
	Tokens []quorumToken    `json:"tokens"`
	Values []quorumValueRow `json:"quorum_values"`
}

// quorumCommand is hsmCommand with a check of the command's own flags
// before anything is opened or logged in, so a command-line mistake is
// reported as one whatever the state of the deployment.
func quorumCommand(name, summary string, strs, uints map[string]string, check func(o *hsmOpts) error,
	do func(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error) *command {
	c := hsmCommand(name, summary, "admin", strs, uints, nil, do)
	inner := c.run
	c.run = func(ctx context.Context, e *env, opts any, args []string) error {
		if err := check(opts.(*hsmOpts)); err != nil {
			return err
		}
		return inner(ctx, e, opts, args)
	}
	return c
}

// offlineOpts are the flags of the commands that never reach an HSM.
type offlineOpts struct{ s map[string]*string }

func offlineFlags(strs map[string]string) func(fs *flag.FlagSet) any {
	return func(fs *flag.FlagSet) any {
		o := &offlineOpts{s: map[string]*string{}}
		for name, usage := range strs {
			o.s[name] = fs.String(name, "", usage)
		}
		return o
	}
}

func (o *offlineOpts) need(names ...string) error {
	for _, n := range names {
		if *o.s[n] == "" {
			return fmt.Errorf("%w: --%s is required", errUsage, n)
		}
	}
	return nil
}

func checkService(s string) error {
	switch s {
	case "":
		return fmt.Errorf("%w: --service is required", errUsage)
	case "user", "quorum":
		return nil
	}
	return fmt.Errorf("%w: --service must be %s, not %q", errUsage, strings.Join(quorumServices, " or "), s)
}

func quorumCommands() []*command {
	return []*command{
		{name: "quorum create-key", summary: "create an ECDSA P-256 quorum key pair: the private key to a file, the public key printed (offline)",
			flags: offlineFlags(map[string]string{"out": "the private key file to create (PEM PKCS#8, mode 0600)"}), run: runCreateKey},
		quorumCommand("quorum register-key", "register the logged-in admin's quorum public key (admins)",
			map[string]string{"key-file": "a PEM file: the ECDSA P-256 private key (PKCS#8) or its public key"}, nil,
			func(o *hsmOpts) error { return need(o, "key-file") }, runRegisterKey),
		quorumCommand("quorum token-sign generate", "get a quorum token for a service (admins); its approvers sign its challenge",
			map[string]string{"service": "user or quorum", "out": "also write the token to this file, as JSON, for the approvers"}, nil,
			func(o *hsmOpts) error { return checkService(*o.s["service"]) }, runGenerateToken),
		{name: "quorum token-sign sign", summary: "sign a token's challenge with an approver's private key (offline)",
			flags: offlineFlags(map[string]string{"token-file": "the token, as token-sign generate wrote it", "key-file": "the approver's private key (PEM PKCS#8)",
				"approver": "the approver's username", "out": "write the signature to this file instead of printing it"}), run: runSignToken},
		quorumCommand("quorum token-sign approve", "submit an approver's signature of a token (admins)",
			map[string]string{"signature-file": "the signature, as token-sign sign wrote it"}, nil,
			func(o *hsmOpts) error { return need(o, "signature-file") }, runApproveToken),
		quorumCommand("quorum token-sign list", "list the quorum tokens and the quorum value of each service (admins)", nil, nil,
			func(*hsmOpts) error { return nil }, runListTokens),
		quorumCommand("quorum token-sign set-quorum-value", "set a service's quorum value M (admins)",
			map[string]string{"service": "user or quorum", "token-id": "an approved token for the quorum service, while its quorum value is above 1"},
			map[string]string{"value": fmt.Sprintf("the quorum value, 1 to %d (1: no quorum)", maxQuorumValue)},
			func(o *hsmOpts) error {
				if err := checkService(*o.s["service"]); err != nil {
					return err
				}
				if err := need(o, "value"); err != nil {
					return err
				}
				if *o.u["value"] > maxQuorumValue {
					return fmt.Errorf("%w: --value must be 1 to %d", errUsage, maxQuorumValue)
				}
				return nil
			}, runSetQuorumValue),
	}
}

func runCreateKey(_ context.Context, e *env, opts any, _ []string) error {
	o := opts.(*offlineOpts)
	if err := o.need("out"); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	pubPEM, err := publicKeyPEM(&key.PublicKey)
	if err != nil {
		return err
	}
	path := *o.s["out"]
	// O_EXCL: never overwrite a key someone may have registered.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return e.emit(map[string]string{"private_key_file": path, "public_key": pubPEM}, func(w io.Writer) {
		fmt.Fprintf(w, "private key written to %s\n%s", path, pubPEM)
	})
}

func publicKeyPEM(pub *ecdsa.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), nil
}

// readQuorumKey reads a PEM file holding an ECDSA P-256 private key (PKCS#8,
// or SEC 1 "EC PRIVATE KEY") or, when allowPublic, a public key. It returns
// the public key and, for a private key file, the private key.
func readQuorumKey(path string, allowPublic bool) (*ecdsa.PublicKey, *ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, nil, fmt.Errorf("%s is not a PEM file", path)
	}
	var key any
	switch {
	case block.Type == "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case block.Type == "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case block.Type == "PUBLIC KEY" && allowPublic:
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	default:
		return nil, nil, fmt.Errorf("%s holds a %q PEM block; want an ECDSA P-256 private key (PRIVATE KEY)", path, block.Type)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	var pub *ecdsa.PublicKey
	priv, _ := key.(*ecdsa.PrivateKey)
	if priv != nil {
		pub = &priv.PublicKey
	} else {
		pub, _ = key.(*ecdsa.PublicKey)
	}
	if pub == nil || pub.Curve != elliptic.P256() {
		return nil, nil, fmt.Errorf("%s: a quorum key must be an ECDSA P-256 key", path)
	}
	return pub, priv, nil
}

func runRegisterKey(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
	pub, _, err := readQuorumKey(*o.s["key-file"], true)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	if _, err := hsm.RegisterQuorumKey(ctx, &hsmv1.RegisterQuorumKeyRequest{PublicKeyDer: der}); err != nil {
		return err
	}
	return done(e, "quorum key of "+*o.username+" registered")
}

func runGenerateToken(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
	resp, err := hsm.GenerateQuorumToken(ctx, &hsmv1.GenerateQuorumTokenRequest{Service: *o.s["service"]})
	if err != nil {
		return err
	}
	tok := tokenFromAPI(resp.GetToken())
	if out := *o.s["out"]; out != "" {
		if err := writeJSON(out, tok); err != nil {
			return fmt.Errorf("token %s issued, but: %w", tok.TokenID, err)
		}
	}
	return e.emit(tok, func(w io.Writer) {
		printToken(w, tok)
		if out := *o.s["out"]; out != "" {
			fmt.Fprintf(w, "token written to %s\n", out)
		}
	})
}

func printToken(w io.Writer, t quorumToken) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "token id:\t%s\n", t.TokenID)
	fmt.Fprintf(tw, "service:\t%s\n", t.Service)
	fmt.Fprintf(tw, "requester:\t%s\n", t.Requester)
	fmt.Fprintf(tw, "expires:\t%s\n", t.ExpiresAt)
	fmt.Fprintf(tw, "challenge:\t%s\n", base64.StdEncoding.EncodeToString(t.Challenge))
	fmt.Fprintf(tw, "approvers:\t%s\n", strings.Join(t.Approvers, ","))
	tw.Flush()
}

// writeJSON writes v to path, indented.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func runSignToken(_ context.Context, e *env, opts any, _ []string) error {
	o := opts.(*offlineOpts)
	if err := o.need("token-file", "key-file", "approver"); err != nil {
		return err
	}
	var tok quorumToken
	if err := readJSON(*o.s["token-file"], &tok); err != nil {
		return err
	}
	if tok.TokenID == "" || len(tok.Challenge) == 0 {
		return fmt.Errorf("%s is not a quorum token: no token_id or challenge", *o.s["token-file"])
	}
	_, priv, err := readQuorumKey(*o.s["key-file"], false)
	if err != nil {
		return err
	}
	digest := sha256.Sum256(tok.Challenge)
	sig, err := ecdsa.SignASN1(rand.Reader, priv, digest[:])
	if err != nil {
		return err
	}
	s := quorumSignature{TokenID: tok.TokenID, Approver: *o.s["approver"], Signature: sig}
	out := *o.s["out"]
	if out != "" {
		if err := writeJSON(out, s); err != nil {
			return err
		}
	}
	return e.emit(s, func(w io.Writer) {
		if out != "" {
			fmt.Fprintf(w, "signature of token %s by %s written to %s\n", s.TokenID, s.Approver, out)
			return
		}
		b, _ := json.MarshalIndent(s, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
	})
}

func runApproveToken(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
	var s quorumSignature
	if err := readJSON(*o.s["signature-file"], &s); err != nil {
		return err
	}
	if s.TokenID == "" || s.Approver == "" || len(s.Signature) == 0 {
		return fmt.Errorf("%s is not a quorum signature: it needs token_id, approver and signature", *o.s["signature-file"])
	}
	resp, err := hsm.ApproveQuorumToken(ctx, &hsmv1.ApproveQuorumTokenRequest{TokenId: s.TokenID, ApproverUsername: s.Approver, Signature: s.Signature})
	if err != nil {
		return err
	}
	tok := tokenFromAPI(resp.GetToken())
	return e.emit(tok, func(w io.Writer) {
		fmt.Fprintf(w, "token %s approved by %s; approvers: %s\n", tok.TokenID, s.Approver, strings.Join(tok.Approvers, ","))
	})
}

func runListTokens(ctx context.Context, e *env, _ *hsmOpts, hsm hsmv1.HsmServiceClient) error {
	resp, err := hsm.ListQuorumTokens(ctx, &hsmv1.ListQuorumTokensRequest{})
	if err != nil {
		return err
	}
	l := quorumListing{Tokens: []quorumToken{}, Values: []quorumValueRow{}}
	for _, t := range resp.GetTokens() {
		l.Tokens = append(l.Tokens, tokenFromAPI(t))
	}
	for _, v := range resp.GetValues() {
		l.Values = append(l.Values, quorumValueRow{Service: v.GetService(), Value: v.GetValue()})
	}
	return e.emit(l, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TOKEN ID\tSERVICE\tREQUESTER\tAPPROVALS\tAPPROVERS\tEXPIRES")
		for _, t := range l.Tokens {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", t.TokenID, t.Service, t.Requester, len(t.Approvers), strings.Join(t.Approvers, ","), t.ExpiresAt)
		}
		tw.Flush()
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE\tQUORUM VALUE")
		for _, v := range l.Values {
			fmt.Fprintf(tw, "%s\t%d\n", v.Service, v.Value)
		}
		tw.Flush()
	})
}

func runSetQuorumValue(ctx context.Context, e *env, o *hsmOpts, hsm hsmv1.HsmServiceClient) error {
	service, value := *o.s["service"], *o.u["value"]
	if _, err := hsm.SetQuorumValue(ctx, &hsmv1.SetQuorumValueRequest{Service: service, Value: uint32(value), QuorumTokenId: *o.s["token-id"]}); err != nil {
		return err
	}
	return done(e, fmt.Sprintf("quorum value of the %s service set to %d", service, value))
}

// quorumTokenFlag is the usage of --quorum-token-id on the user commands.
const quorumTokenFlag = "an approved quorum token for the user service, while its quorum value is above 1"
