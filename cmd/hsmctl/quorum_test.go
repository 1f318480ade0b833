package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// hsmctlExit runs one command in-process and returns its exit status,
// stdout and stderr, for commands expected to fail.
func hsmctlExit(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// Flag mistakes are usage errors (status 2), found before any deployment
// is opened.
func TestQuorumUsage(t *testing.T) {
	hsm := []string{"--dir", "/nonexistent/hsmsim", "--cluster-id", "c", "--password", "x"}
	with := func(args ...string) []string { return append(args, hsm...) }
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantErr    string
	}{
		{name: "generate needs --service", args: with("quorum", "token-sign", "generate"), wantStatus: 2, wantErr: "--service is required"},
		{name: "generate with an unknown service", args: with("quorum", "token-sign", "generate", "--service", "cluster"), wantStatus: 2,
			wantErr: `--service must be user or quorum, not "cluster"`},
		{name: "set-quorum-value needs --service", args: with("quorum", "token-sign", "set-quorum-value", "--value", "2"), wantStatus: 2, wantErr: "--service is required"},
		{name: "set-quorum-value needs --value", args: with("quorum", "token-sign", "set-quorum-value", "--service", "user"), wantStatus: 2, wantErr: "--value is required"},
		{name: "set-quorum-value 0", args: with("quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "0"), wantStatus: 2, wantErr: "--value is required"},
		{name: "set-quorum-value 9", args: with("quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "9"), wantStatus: 2, wantErr: "--value must be 1 to 8"},
		{name: "set-quorum-value negative", args: with("quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "-1"), wantStatus: 2, wantErr: "invalid value"},
		{name: "set-quorum-value not a number", args: with("quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "two"), wantStatus: 2, wantErr: "invalid value"},
		{name: "register-key needs --key-file", args: with("quorum", "register-key"), wantStatus: 2, wantErr: "--key-file is required"},
		{name: "approve needs --signature-file", args: with("quorum", "token-sign", "approve"), wantStatus: 2, wantErr: "--signature-file is required"},
		{name: "create-key needs --out", args: []string{"quorum", "create-key"}, wantStatus: 2, wantErr: "--out is required"},
		{name: "sign needs --token-file", args: []string{"quorum", "token-sign", "sign", "--key-file", "k", "--approver", "a"}, wantStatus: 2, wantErr: "--token-file is required"},
		{name: "sign needs --approver", args: []string{"quorum", "token-sign", "sign", "--key-file", "k", "--token-file", "t"}, wantStatus: 2, wantErr: "--approver is required"},
		{name: "good flags reach the deployment", args: with("quorum", "token-sign", "set-quorum-value", "--service", "quorum", "--value", "8"), wantStatus: 1, wantErr: "no deployment in"},
		{name: "list reaches the deployment", args: with("quorum", "token-sign", "list"), wantStatus: 1, wantErr: "no deployment in"},
		{name: "user create takes --quorum-token-id", args: with("user", "create", "--new-username", "u", "--new-role", "admin", "--new-password", "password1", "--quorum-token-id", "qt-1"),
			wantStatus: 1, wantErr: "no deployment in"},
		{name: "user delete takes --quorum-token-id", args: with("user", "delete", "--target-username", "u", "--quorum-token-id", "qt-1"), wantStatus: 1, wantErr: "no deployment in"},
		{name: "change-password takes --quorum-token-id", args: with("user", "change-password", "--new-password", "password1", "--quorum-token-id", "qt-1"), wantStatus: 1, wantErr: "no deployment in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := hsmctlExit(tt.args...)
			require.Equal(t, tt.wantStatus, code, "stderr: %s", errOut)
			require.Contains(t, errOut, tt.wantErr)
		})
	}
}

// create-key and token-sign sign work offline: the key file is private and
// P-256, and the signature verifies against the public key create-key
// printed, over SHA-256 of the token's challenge.
func TestQuorumSignOffline(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "officer.pem")
	var created map[string]string
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, "quorum", "create-key", "--out", keyFile, "--output", "json")), &created))
	require.Equal(t, keyFile, created["private_key_file"])
	st, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the private key file is private")
	block, _ := pem.Decode([]byte(created["public_key"]))
	require.NotNil(t, block)
	require.Equal(t, "PUBLIC KEY", block.Type)
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	require.NoError(t, err)

	code, _, errOut := hsmctlExit("quorum", "create-key", "--out", keyFile)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "exists", "create-key never overwrites a key")

	tok := quorumToken{TokenID: "qt-0123", Service: "user", Requester: "admin", Challenge: bytes.Repeat([]byte{7}, 32)}
	tokenFile := filepath.Join(dir, "token.json")
	require.NoError(t, writeJSON(tokenFile, tok))
	sigFile := filepath.Join(dir, "sig.json")
	require.Contains(t, hsmctl(t, "quorum", "token-sign", "sign", "--token-file", tokenFile, "--key-file", keyFile, "--approver", "officer", "--out", sigFile),
		"written to "+sigFile)
	var fromFile, printed quorumSignature
	require.NoError(t, readJSON(sigFile, &fromFile))
	// Without --out the signature JSON is printed, in text mode too.
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, "quorum", "token-sign", "sign", "--token-file", tokenFile, "--key-file", keyFile, "--approver", "officer")), &printed))
	digest := sha256.Sum256(tok.Challenge)
	for _, s := range []quorumSignature{fromFile, printed} {
		require.Equal(t, "qt-0123", s.TokenID)
		require.Equal(t, "officer", s.Approver)
		require.True(t, ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), digest[:], s.Signature), "the signature verifies")
	}

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(p384)
	require.NoError(t, err)
	p384File := filepath.Join(dir, "p384.pem")
	require.NoError(t, os.WriteFile(p384File, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600))
	notAToken := filepath.Join(dir, "not-a-token.json")
	require.NoError(t, os.WriteFile(notAToken, []byte(`{"service":"user"}`), 0o600))
	refusals := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"a P-384 key", []string{"--token-file", tokenFile, "--key-file", p384File}, "must be an ECDSA P-256 key"},
		{"a public key", []string{"--token-file", tokenFile, "--key-file", tokenFile}, "not a PEM file"},
		{"a token without challenge", []string{"--token-file", notAToken, "--key-file", keyFile}, "is not a quorum token"},
		{"a missing token file", []string{"--token-file", filepath.Join(dir, "nope"), "--key-file", keyFile}, "no such file"},
	}
	for _, tt := range refusals {
		code, _, errOut := hsmctlExit(append([]string{"quorum", "token-sign", "sign", "--approver", "officer"}, tt.args...)...)
		require.Equal(t, 1, code, tt.name)
		require.Contains(t, errOut, tt.wantErr, tt.name)
	}
}

// End to end over real hsmd processes: with the user service's quorum value
// at 2, user create needs a token the requester got and two admins
// approved, each with a signature made offline by its registered key.
func TestQuorumTokenSign(t *testing.T) {
	buildHsmd(t)
	work := t.TempDir()
	dir := filepath.Join(work, "dep")
	var up upResult
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, "up", "--detach", "--no-kms", "--dir", dir, "--output", "json")), &up))
	t.Cleanup(func() {
		for _, h := range up.Hsms {
			syscall.Kill(h.Runtime.PID, syscall.SIGKILL)
		}
	})
	adminPW, err := os.ReadFile(filepath.Join(dir, adminPasswordFile))
	require.NoError(t, err)
	const officerPW = "officer-password-1"
	as := func(user, pw string) []string {
		return []string{"--dir", dir, "--cluster-id", up.ClusterID, "--username", user, "--password", pw}
	}
	admin, officer := as("admin", strings.TrimSpace(string(adminPW))), as("officer", officerPW)
	cmd := func(who []string, args ...string) []string { return append(args, who...) }

	hsmctl(t, cmd(admin, "user", "create", "--new-username", "officer", "--new-role", "admin", "--new-password", officerPW)...)
	keys := map[string]string{}
	for name, who := range map[string][]string{"admin": admin, "officer": officer} {
		keys[name] = filepath.Join(work, name+".pem")
		require.Contains(t, hsmctl(t, "quorum", "create-key", "--out", keys[name]), "BEGIN PUBLIC KEY")
		hsmctl(t, cmd(who, "quorum", "register-key", "--key-file", keys[name])...)
	}
	hsmctl(t, cmd(admin, "quorum", "token-sign", "set-quorum-value", "--service", "user", "--value", "2")...)
	list := func() quorumListing {
		var l quorumListing
		require.NoError(t, json.Unmarshal([]byte(hsmctl(t, cmd(admin, "quorum", "token-sign", "list", "--output", "json")...)), &l))
		return l
	}
	require.Equal(t, []quorumValueRow{{"quorum", 1}, {"user", 2}}, list().Values)

	createCarol := cmd(admin, "user", "create", "--new-username", "carol", "--new-role", "crypto-user", "--new-password", "carol-password-1")
	code, _, errOut := hsmctlExit(createCarol...)
	require.Equal(t, 1, code, "no token: %s", errOut)
	require.Contains(t, errOut, "quorum token required")

	tokenFile := filepath.Join(work, "token.json")
	var tok quorumToken
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, cmd(admin, "quorum", "token-sign", "generate", "--service", "user", "--out", tokenFile, "--output", "json")...)), &tok))
	require.Equal(t, "user", tok.Service)
	require.Equal(t, "admin", tok.Requester)
	require.Len(t, tok.Challenge, 32)
	var onDisk quorumToken
	require.NoError(t, readJSON(tokenFile, &onDisk))
	require.Equal(t, tok, onDisk, "the token file holds the token")

	sign := func(approver, key string) string {
		sig := filepath.Join(work, approver+"-signed-by-"+filepath.Base(key)+".json")
		hsmctl(t, "quorum", "token-sign", "sign", "--token-file", tokenFile, "--key-file", key, "--approver", approver, "--out", sig)
		return sig
	}
	// A signature by another admin's key does not count.
	code, _, errOut = hsmctlExit(cmd(admin, "quorum", "token-sign", "approve", "--signature-file", sign("officer", keys["admin"]))...)
	require.Equal(t, 1, code, "a forged approval: %s", errOut)
	require.Contains(t, errOut, "not \"officer\"'s signature")

	var approved quorumToken
	require.NoError(t, json.Unmarshal([]byte(hsmctl(t, cmd(admin, "quorum", "token-sign", "approve", "--signature-file", sign("admin", keys["admin"]), "--output", "json")...)), &approved))
	require.Equal(t, []string{"admin"}, approved.Approvers)
	withToken := append(createCarol, "--quorum-token-id", tok.TokenID)
	code, _, errOut = hsmctlExit(withToken...)
	require.Equal(t, 1, code, "one approval of two: %s", errOut)
	require.Contains(t, errOut, "not enough approvals (1 of 2)")

	// The second admin submits its own approval through its own session.
	require.Contains(t, hsmctl(t, cmd(officer, "quorum", "token-sign", "approve", "--signature-file", sign("officer", keys["officer"]))...), "approvers: admin,officer")
	l := list()
	require.Len(t, l.Tokens, 1)
	require.Equal(t, tok.TokenID, l.Tokens[0].TokenID)
	require.Equal(t, []string{"admin", "officer"}, l.Tokens[0].Approvers)
	require.Contains(t, hsmctl(t, cmd(admin, "quorum", "token-sign", "list")...), tok.TokenID, "the text listing shows the token")

	hsmctl(t, withToken...)
	require.Contains(t, hsmctl(t, cmd(admin, "user", "list")...), "carol")
	require.Empty(t, list().Tokens, "the token is used up")
	code, _, errOut = hsmctlExit(cmd(admin, "user", "delete", "--target-username", "carol", "--quorum-token-id", tok.TokenID)...)
	require.Equal(t, 1, code, "a used token: %s", errOut)

	hsmctl(t, "down", "--dir", dir, "--purge")
	for _, h := range up.Hsms {
		require.False(t, alive(h.Runtime.PID), "process %d survived hsmctl down", h.Runtime.PID)
	}
}
