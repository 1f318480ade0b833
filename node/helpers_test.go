package node_test

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hsmsim/hsmsim/node"
	"github.com/hsmsim/hsmsim/node/nodetest"
	hsmv1 "github.com/hsmsim/hsmsim/proto/hsm/v1"
)

// gcm is the mechanism the tests encrypt with.
const gcm = hsmv1.EncryptionMechanism_ENCRYPTION_MECHANISM_AES_GCM

// maxRetries bounds how often a test client retries a call that failed with
// codes.Unavailable. The HSM itself waits up to 10 s for a leader before it
// answers Unavailable, so a retry needs no delay of its own.
const maxRetries = 5

// userSession is a logged-in session on one HSM of a cluster, with its own
// client connection.
type userSession struct {
	c   *nodetest.Cluster
	i   int
	cl  hsmv1.HsmServiceClient
	ctx context.Context
}

// login opens a session for user on node i.
func login(t testing.TB, c *nodetest.Cluster, i int, user, password string, role hsmv1.Role) *userSession {
	t.Helper()
	return &userSession{c: c, i: i, cl: c.Client(i), ctx: c.Login(i, user, password, role)}
}

// loginCU opens a crypto user's session on node i.
func loginCU(t testing.TB, c *nodetest.Cluster, i int, user, password string) *userSession {
	t.Helper()
	return login(t, c, i, user, password, hsmv1.Role_ROLE_CRYPTO_USER)
}

// loginAdmin opens the admin's session on node i.
func loginAdmin(t testing.TB, c *nodetest.Cluster, i int) *userSession {
	t.Helper()
	return login(t, c, i, node.AdminUsername, nodetest.AdminPassword, hsmv1.Role_ROLE_ADMIN)
}

// retryUnavailable runs call until it returns anything but Unavailable, at
// most maxRetries times, as a client that fails over would.
func retryUnavailable(t testing.TB, call func() error) error {
	t.Helper()
	var err error
	for attempt := 0; attempt < maxRetries; attempt++ {
		if err = call(); status.Code(err) != codes.Unavailable {
			return err
		}
		t.Logf("retrying after %v", err)
	}
	return err
}

// createAES creates an AES-256 key in the session, retrying while the
// cluster has no leader, and returns its handle.
func (s *userSession) createAES(t testing.TB, label string) uint64 {
	t.Helper()
	var resp *hsmv1.GenerateSymmetricKeyResponse
	err := retryUnavailable(t, func() (err error) {
		resp, err = s.cl.GenerateSymmetricKey(s.ctx, aes256(label))
		return err
	})
	require.NoError(t, err, "create key %q on node %d", label, s.i)
	require.NotZero(t, resp.GetKey().GetHandle())
	return resp.GetKey().GetHandle()
}

// encrypt encrypts plaintext with AES-GCM under handle, with aad "aad".
func (s *userSession) encrypt(t testing.TB, handle uint64, plaintext []byte) []byte {
	t.Helper()
	resp, err := s.cl.Encrypt(s.ctx, &hsmv1.EncryptRequest{Handle: handle, Mechanism: gcm, Plaintext: plaintext, Aad: []byte("aad")})
	require.NoError(t, err, "encrypt with key %d on node %d", handle, s.i)
	return resp.GetCiphertext()
}

// decrypt reverses encrypt.
func (s *userSession) decrypt(t testing.TB, handle uint64, ciphertext []byte) []byte {
	t.Helper()
	resp, err := s.cl.Decrypt(s.ctx, &hsmv1.DecryptRequest{Handle: handle, Mechanism: gcm, Ciphertext: ciphertext, Aad: []byte("aad")})
	require.NoError(t, err, "decrypt with key %d on node %d", handle, s.i)
	return resp.GetPlaintext()
}

// handles returns the handles of the keys the session may use.
func (s *userSession) handles(t testing.TB) []uint64 {
	t.Helper()
	resp, err := s.cl.FindKeys(s.ctx, &hsmv1.FindKeysRequest{})
	require.NoError(t, err, "find keys on node %d", s.i)
	out := make([]uint64, 0, len(resp.GetKeys()))
	for _, k := range resp.GetKeys() {
		out = append(out, k.GetHandle())
	}
	return out
}

// ackedKey is a key whose creation the cluster acknowledged, with a
// ciphertext it made.
type ackedKey struct {
	handle     uint64
	plaintext  []byte
	ciphertext []byte
}

// requireCode asserts that err is a gRPC status with code and returns it.
func requireCode(t testing.TB, err error, code codes.Code, msgAndArgs ...any) *status.Status {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a gRPC status: %v", err)
	require.Equal(t, code.String(), st.Code().String(), "unexpected status %q %v", st.Message(), msgAndArgs)
	return st
}

// logCapture keeps every node's log lines, by node id, and passes them on to
// t.Log as the harness does.
type logCapture struct {
	t      testing.TB
	mu     sync.Mutex
	byNode map[string]*bytes.Buffer
}

func newLogCapture(t testing.TB) *logCapture {
	return &logCapture{t: t, byNode: make(map[string]*bytes.Buffer)}
}

// configure routes a node's logs through the capture; use it in (or as) the
// cluster's configure function.
func (lc *logCapture) configure(cfg *node.Config) {
	lc.mu.Lock()
	if lc.byNode[cfg.NodeID] == nil {
		lc.byNode[cfg.NodeID] = new(bytes.Buffer)
	}
	lc.mu.Unlock()
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: cfg.NodeID, Level: hclog.Info, Output: captureWriter{lc, cfg.NodeID}})
}

// text returns what node id has logged so far.
func (lc *logCapture) text(id string) string {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if b := lc.byNode[id]; b != nil {
		return b.String()
	}
	return ""
}

// all returns every node's logs.
func (lc *logCapture) all() []byte {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	var out bytes.Buffer
	for _, b := range lc.byNode {
		out.Write(b.Bytes())
	}
	return out.Bytes()
}

type captureWriter struct {
	lc *logCapture
	id string
}

func (w captureWriter) Write(p []byte) (int, error) {
	w.lc.mu.Lock()
	w.lc.byNode[w.id].Write(p)
	w.lc.mu.Unlock()
	w.lc.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
